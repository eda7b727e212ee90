/* The two Base45 loops of vaxqr.codec in C (RFC 9285), built by scripts/build_native.py
 * beside the mypyc modules and used only while that build is current (vaxqr/__init__.py).
 *
 * vaxqr.codec keeps the checks that give its error messages (the alphabet, the length, an
 * overflowing final pair) and its pure-Python loops, which tests/test_codec.py compares
 * with these on random and hostile input. Neither function trusts its input: every byte
 * value is accepted (an overflowing group gives None), every length is checked against
 * the buffer, and nothing is read or written outside the objects' own buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static const char ALPHABET[45] = {
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E',
    'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T',
    'U', 'V', 'W', 'X', 'Y', 'Z', ' ', '$', '%', '*', '+', '-', '.', '/', ':'};

/* decode_groups(values: bytes, full: int) -> bytes | None
 *
 * values holds digit values (0..44 once vaxqr.codec has checked the alphabet); the first
 * `full` of them (a multiple of 3) are decoded, each group c d e to the two bytes of
 * c + 45 d + 2025 e, big-endian. None when a group exceeds 65535. */
static PyObject *decode_groups(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "decode_groups(values, full) takes 2 arguments");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_groups: values must be bytes");
        return NULL;
    }
    Py_ssize_t full = PyLong_AsSsize_t(args[1]);
    if (full == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (full < 0 || full > size || full % 3 != 0) {
        PyErr_SetString(PyExc_ValueError,
                        "decode_groups: full must be a multiple of 3 within values");
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t groups = full / 3;
    PyObject *out = PyBytes_FromStringAndSize(NULL, 2 * groups);
    if (out == NULL) {
        return NULL;
    }
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t g = 0; g < groups; g++) {
        /* at most 255 * (1 + 45 + 2025) = 528,105: no overflow in 32 bits */
        unsigned long w = (unsigned long)in[0] + 45UL * in[1] + 2025UL * in[2];
        if (w > 0xFFFFUL) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        o[0] = (unsigned char)(w >> 8);
        o[1] = (unsigned char)(w & 0xFFUL);
        in += 3;
        o += 2;
    }
    return out;
}

/* encode(data: bytes) -> str
 *
 * Base45 of data: each pair of bytes (big-endian) as three characters, least significant
 * first; a final odd byte as two. */
static PyObject *encode(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "encode: data must be bytes");
        return NULL;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t groups = n / 2;
    if (groups > (PY_SSIZE_T_MAX - 2) / 3) {
        return PyErr_NoMemory();
    }
    Py_ssize_t length = 3 * groups + (n % 2 ? 2 : 0);
    PyObject *out = PyUnicode_New(length, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *o = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t g = 0; g < groups; g++) {
        unsigned int w = ((unsigned int)in[0] << 8) | in[1];
        o[0] = (Py_UCS1)ALPHABET[w % 45];
        o[1] = (Py_UCS1)ALPHABET[(w / 45) % 45];
        o[2] = (Py_UCS1)ALPHABET[w / 2025];
        in += 2;
        o += 3;
    }
    if (n % 2) {
        unsigned int last = in[0];
        o[0] = (Py_UCS1)ALPHABET[last % 45];
        o[1] = (Py_UCS1)ALPHABET[last / 45];
    }
    return out;
}

static PyMethodDef methods[] = {
    {"decode_groups", (PyCFunction)(void (*)(void))decode_groups, METH_FASTCALL,
     "decode_groups(values, full) -> bytes | None: the full // 3 Base45 groups of digit "
     "values, or None if one exceeds 65535."},
    {"encode", encode, METH_O, "encode(data: bytes) -> str: Base45 (RFC 9285)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "vaxqr._base45",
    "Base45 loops of vaxqr.codec in C (see vaxqr/_base45.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__base45(void) { return PyModule_Create(&module_def); }
