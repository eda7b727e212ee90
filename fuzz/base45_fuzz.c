/* libFuzzer harness for vaxqr/_base45.c, built with AddressSanitizer and
 * UndefinedBehaviorSanitizer by fuzz/base45_fuzz.sh (see fuzz/README.md).
 *
 * The extension's source is included here, so the sanitizers instrument it; an embedded
 * Python (PYTHONMALLOC=malloc: every object is its own malloc block, which ASan guards,
 * where pymalloc's arenas would hide an overrun into a neighbouring object) calls its two
 * functions as vaxqr.codec does and with hostile arguments, and compares every result
 * with a plain reference Base45 written below from RFC 9285 alone. Reference counts of the
 * arguments and of None are checked around every call: a leak or a double decref on any
 * path, the error paths included, aborts the run.
 *
 * The first input byte picks the target:
 *   0  decode_groups(values, full) with values = the rest, full from the next 8 bytes
 *      (any Py_ssize_t: negative, beyond the buffer, not a multiple of 3, huge)
 *   1  encode(rest), then the reference decode of the result must give rest back
 *   2  the rest as Base45 text, as vaxqr.codec.b45decode takes it apart (the alphabet
 *      check, the length, then decode_groups on the digit values): the verdict and the
 *      bytes must match the reference decoder's
 *   3  the wrong argument types and counts (bytearray, str, memoryview, int, float, None,
 *      a huge int, 0-3 arguments): a TypeError / ValueError / OverflowError, never a crash
 */
#include "../vaxqr/_base45.c"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reference (RFC 9285 section 4), deliberately naive ---- */

static int ref_value(unsigned char ch) {
    static const char *abc = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    for (int i = 0; i < 45; i++) {
        if ((unsigned char)abc[i] == ch) {
            return i;
        }
    }
    return -1;
}

/* Decode n characters of text into out (room for 2 n / 3 + 1 bytes); -1 if invalid. */
static long ref_decode(const unsigned char *text, size_t n, unsigned char *out) {
    if (n % 3 == 1) {
        return -1;
    }
    long len = 0;
    for (size_t i = 0; i < n; i += 3) {
        if (n - i >= 3) {
            int c = ref_value(text[i]), d = ref_value(text[i + 1]), e = ref_value(text[i + 2]);
            if (c < 0 || d < 0 || e < 0) {
                return -1;
            }
            long w = c + 45L * d + 2025L * e;
            if (w > 65535) {
                return -1;
            }
            out[len++] = (unsigned char)(w / 256);
            out[len++] = (unsigned char)(w % 256);
        } else {
            int c = ref_value(text[i]), d = ref_value(text[i + 1]);
            if (c < 0 || d < 0) {
                return -1;
            }
            long w = c + 45L * d;
            if (w > 255) {
                return -1;
            }
            out[len++] = (unsigned char)w;
        }
    }
    return len;
}

static const char REF_ABC[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/* Encode n bytes into out (room for 3 n / 2 + 2 characters); the length. */
static size_t ref_encode(const unsigned char *data, size_t n, char *out) {
    size_t len = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned w = data[i] * 256u + data[i + 1];
        out[len++] = REF_ABC[w % 45];
        out[len++] = REF_ABC[(w / 45) % 45];
        out[len++] = REF_ABC[w / (45 * 45)];
    }
    if (n % 2) {
        out[len++] = REF_ABC[data[n - 1] % 45];
        out[len++] = REF_ABC[data[n - 1] / 45];
    }
    return len;
}

/* ---- checks ---- */

#define CHECK(cond, what)                                                         \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "base45_fuzz: %s (%s:%d)\n", what, __FILE__, __LINE__); \
            if (PyErr_Occurred()) {                                               \
                PyErr_Print();                                                    \
            }                                                                     \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* Call decode_groups(args...) and check the reference counts around it. */
static PyObject *call_decode(PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t before[4];
    for (Py_ssize_t i = 0; i < nargs; i++) {
        before[i] = Py_REFCNT(args[i]);
    }
    Py_ssize_t none_before = Py_REFCNT(Py_None);
    PyObject *r = decode_groups(NULL, args, nargs);
    for (Py_ssize_t i = 0; i < nargs; i++) {
        /* the empty bytes object is a shared singleton: the result may be the argument */
        CHECK(Py_REFCNT(args[i]) == before[i] + (r != NULL && r == args[i]),
              "decode_groups changed an argument's refcount");
    }
    if (r == Py_None) {
        CHECK(Py_REFCNT(Py_None) == none_before + 1, "decode_groups: None not increfed once");
    } else {
        CHECK(Py_REFCNT(Py_None) == none_before, "decode_groups changed None's refcount");
    }
    CHECK((r == NULL) == (PyErr_Occurred() != NULL), "decode_groups: NULL without an error");
    CHECK(r == NULL || Py_REFCNT(r) >= 1, "decode_groups: a dead result");
    return r;
}

static PyObject *call_encode(PyObject *arg) {
    Py_ssize_t before = Py_REFCNT(arg), none_before = Py_REFCNT(Py_None);
    PyObject *r = encode(NULL, arg);
    CHECK(Py_REFCNT(arg) == before, "encode changed its argument's refcount");
    CHECK(Py_REFCNT(Py_None) == none_before, "encode changed None's refcount");
    CHECK((r == NULL) == (PyErr_Occurred() != NULL), "encode: NULL without an error");
    return r;
}

static void expect_error(PyObject *r, PyObject *type) {
    CHECK(r == NULL, "a wrong argument was accepted");
    CHECK(PyErr_ExceptionMatches(type), "a wrong argument raised an unexpected exception");
    PyErr_Clear();
}

/* target 0: decode_groups on raw digit values with any `full` */
static void fuzz_groups(const uint8_t *data, size_t size) {
    int64_t full = 0;
    if (size >= 8) {
        memcpy(&full, data, 8);
        data += 8;
        size -= 8;
        /* mostly a sane full: a multiple of 3 within the buffer, or one around it */
        if ((full & 3) != 0) {
            int64_t max = (int64_t)size - (int64_t)size % 3;
            full = (full & 1) ? max : (int64_t)((uint64_t)full % ((uint64_t)size + 8)) - 4;
        }
    }
    PyObject *values = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    PyObject *fullobj = PyLong_FromLongLong(full);
    CHECK(values && fullobj, "allocation");
    PyObject *args[2] = {values, fullobj};
    PyObject *r = call_decode(args, 2);
    if (full < 0 || (uint64_t)full > size || full % 3 != 0) {
        expect_error(r, PyExc_ValueError);
    } else {
        /* reference: each group c + 45 d + 2025 e over raw values 0..255 */
        int overflow = 0;
        unsigned char *want = malloc((size_t)full / 3 * 2 + 1);
        CHECK(want, "allocation");
        for (int64_t g = 0; g < full / 3; g++) {
            unsigned long w = data[3 * g] + 45UL * data[3 * g + 1] + 2025UL * data[3 * g + 2];
            if (w > 65535) {
                overflow = 1;
                break;
            }
            want[2 * g] = (unsigned char)(w >> 8);
            want[2 * g + 1] = (unsigned char)w;
        }
        CHECK(r != NULL, "decode_groups failed on valid arguments");
        if (overflow) {
            CHECK(r == Py_None, "decode_groups missed an overflowing group");
        } else {
            CHECK(PyBytes_Check(r), "decode_groups: not bytes");
            CHECK(PyBytes_GET_SIZE(r) == full / 3 * 2, "decode_groups: wrong length");
            CHECK(memcmp(PyBytes_AS_STRING(r), want, (size_t)(full / 3 * 2)) == 0,
                  "decode_groups differs from the reference");
        }
        free(want);
        Py_XDECREF(r);
    }
    Py_DECREF(values);
    Py_DECREF(fullobj);
}

/* target 1: encode, checked against the reference encoder and decoder */
static void fuzz_encode(const uint8_t *data, size_t size) {
    PyObject *arg = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    CHECK(arg, "allocation");
    PyObject *r = call_encode(arg);
    CHECK(r != NULL, "encode failed");
    CHECK(PyUnicode_Check(r) && PyUnicode_IS_ASCII(r), "encode: not an ASCII str");
    char *want = malloc(size / 2 * 3 + 3);
    unsigned char *back = malloc(size + 2);
    CHECK(want && back, "allocation");
    size_t n = ref_encode(data, size, want);
    CHECK((size_t)PyUnicode_GET_LENGTH(r) == n, "encode: wrong length");
    const unsigned char *got = PyUnicode_1BYTE_DATA(r);
    CHECK(memcmp(got, want, n) == 0, "encode differs from the reference");
    CHECK(ref_decode(got, n, back) == (long)size && memcmp(back, data, size) == 0,
          "encode does not round-trip through the reference decoder");
    free(want);
    free(back);
    Py_DECREF(r);
    Py_DECREF(arg);
}

/* target 2: Base45 text taken apart as vaxqr.codec.b45decode does */
static void fuzz_text(const uint8_t *data, size_t size) {
    unsigned char *want = malloc(size / 3 * 2 + 2);
    CHECK(want, "allocation");
    long ref = ref_decode(data, size, want);
    /* codec: the alphabet, then the length, then the C loop, then a final pair */
    int valid = size % 3 != 1;
    unsigned char *values = malloc(size + 1);
    CHECK(values, "allocation");
    for (size_t i = 0; i < size; i++) {
        int v = ref_value(data[i]);
        valid &= v >= 0;
        values[i] = (unsigned char)(v < 0 ? 0xFF : v);
    }
    size_t full = size - size % 3;
    PyObject *vobj = PyBytes_FromStringAndSize((const char *)values, (Py_ssize_t)size);
    PyObject *fobj = PyLong_FromSize_t(full);
    CHECK(vobj && fobj, "allocation");
    PyObject *args[2] = {vobj, fobj};
    PyObject *r = call_decode(args, 2);
    CHECK(r != NULL, "decode_groups failed on valid arguments");
    if (r != Py_None && valid && size % 3 == 2) {
        unsigned w = values[full] + 45u * values[full + 1];
        valid = w <= 255;
        if (valid) {
            CHECK(ref >= 0 && (size_t)ref == (size_t)PyBytes_GET_SIZE(r) + 1,
                  "text: a final pair the reference refuses");
            CHECK(want[ref - 1] == w, "text: the final byte differs");
        }
    }
    if (valid && r != Py_None) {
        CHECK(ref >= 0, "text: accepted where the reference refuses");
        CHECK(memcmp(PyBytes_AS_STRING(r), want, (size_t)PyBytes_GET_SIZE(r)) == 0,
              "text: decoded bytes differ from the reference");
        /* and back: Base45 has one encoding per byte string */
        PyObject *bytes = PyBytes_FromStringAndSize((const char *)want, ref);
        CHECK(bytes, "allocation");
        PyObject *text = call_encode(bytes);
        CHECK(text && (size_t)PyUnicode_GET_LENGTH(text) == size &&
                  memcmp(PyUnicode_1BYTE_DATA(text), data, size) == 0,
              "text: does not re-encode to itself");
        Py_DECREF(text);
        Py_DECREF(bytes);
    } else if (size % 3 != 1) {
        /* refused by codec (alphabet, overflow): the reference must refuse it too, unless
         * only invalid characters made decode_groups see an overflow */
        CHECK(ref < 0, "text: refused where the reference accepts");
    }
    Py_XDECREF(r);
    Py_DECREF(vobj);
    Py_DECREF(fobj);
    free(values);
    free(want);
}

/* target 3: wrong argument types and counts */
static void fuzz_types(const uint8_t *data, size_t size) {
    uint8_t pick = size ? data[0] : 0;
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    PyObject *objs[8];
    objs[0] = PyByteArray_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    objs[1] = PyUnicode_DecodeLatin1((const char *)data, (Py_ssize_t)size, NULL);
    objs[2] = PyMemoryView_FromObject(bytes);
    objs[3] = PyLong_FromLong(pick);
    objs[4] = PyFloat_FromDouble(3.0);
    objs[5] = Py_NewRef(Py_None);
    objs[6] = PyLong_FromString("123456789012345678901234567890", NULL, 10); /* > Py_ssize_t */
    objs[7] = Py_NewRef(bytes);
    for (int i = 0; i < 8; i++) {
        CHECK(objs[i], "allocation");
    }
    /* encode(x) for every non-bytes x */
    for (int i = 0; i < 7; i++) {
        expect_error(call_encode(objs[i]), PyExc_TypeError);
    }
    /* decode_groups with every pair of the objects and 0-3 arguments */
    PyObject *a = objs[pick % 8], *b = objs[(pick >> 3) % 8];
    PyObject *args[3] = {a, b, bytes};
    for (Py_ssize_t n = 0; n <= 3; n++) {
        PyObject *r = call_decode(args, n);
        if (n != 2) {
            expect_error(r, PyExc_TypeError);
        } else if (!PyBytes_Check(a) || !PyLong_Check(b)) {
            expect_error(r, PyExc_TypeError);
        } else if (r == NULL) {
            CHECK(PyErr_ExceptionMatches(PyExc_ValueError) ||
                      PyErr_ExceptionMatches(PyExc_OverflowError),
                  "decode_groups: an unexpected exception");
            PyErr_Clear();
        } else {
            Py_DECREF(r);
        }
    }
    for (int i = 0; i < 8; i++) {
        Py_DECREF(objs[i]);
    }
    Py_DECREF(bytes);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.allocator = PYMEM_ALLOCATOR_MALLOC;
    PyStatus status = Py_PreInitialize(&pre);
    CHECK(!PyStatus_Exception(status), "Python pre-initialisation");
    Py_InitializeEx(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        fuzz_groups(data + 1, size - 1);
        break;
    case 1:
        fuzz_encode(data + 1, size - 1);
        break;
    case 2:
        fuzz_text(data + 1, size - 1);
        break;
    default:
        fuzz_types(data + 1, size - 1);
        break;
    }
    CHECK(!PyErr_Occurred(), "an error left set");
    return 0;
}
