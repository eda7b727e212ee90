"""The words of a rendered verdict, in each language `vaxqr verify --lang` offers: data only.

:mod:`vaxqr.verify_view` builds its fixed texts from these once, at import. Every step name
of :data:`vaxqr.verify.STEPS`, and ``input`` and ``trust``, has a reason in every language,
and every language has the same words and labels (tests/test_verdict_text.py). Vietnamese is NFC,
with full diacritics.

What is not here stays in English in every language: the "Details" line (the failed step's
name and the library's technical message), warnings and error messages.
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("en", "vi")

# The plain-words reason of a NOT VALID verdict, by the failed step ("trust": of a CANNOT
# CHECK verdict, what the checkpoint must load; "picture": of a CANNOT READ verdict, how to
# take the picture again).
REASONS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "input": "nothing was read from this input",
        "picture": "no QR code could be read: take the picture or scan again, closer, "
                   "with the QR code flat, well lit and whole in the frame",
        "prefix": "this QR code is not an EU DCC vaccination credential",
        "base45": "the credential's data is damaged or incomplete",
        "zlib": "the credential's data is damaged or incomplete",
        "cose": "the credential's data is damaged or not a credential",
        "cbor": "the credential's data is damaged or not a credential",
        "trust": "this checkpoint has no commune's signer certificate to check it with: "
                 "load the province's trust list (trustlist.json) or the communes' "
                 "signer.crt",
        "signature": "the signature does not check out: altered, forged, or an unknown issuer",
        "key_usage": "the issuer is not allowed to sign this kind of certificate",
        "expiry": "the credential is not valid at this time",
        "schema": "the credential's content is malformed",
        "revocation": "the credential or its issuing commune has been revoked",
        "holder": "the credential does not belong to the person on this ID card",
    },
    "vi": {
        "input": "không đọc được gì từ đầu vào này",
        "picture": "không đọc được mã QR: hãy chụp hoặc quét lại, gần hơn, để mã QR "
                   "phẳng, đủ sáng và nằm trọn trong khung hình",
        "prefix": "mã QR này không phải chứng nhận tiêm chủng theo chuẩn EU DCC",
        "base45": "dữ liệu của chứng nhận bị hỏng hoặc không đầy đủ",
        "zlib": "dữ liệu của chứng nhận bị hỏng hoặc không đầy đủ",
        "cose": "dữ liệu bị hỏng hoặc không phải là chứng nhận",
        "cbor": "dữ liệu bị hỏng hoặc không phải là chứng nhận",
        "trust": "điểm kiểm tra chưa có chứng thư số ký của xã để kiểm tra: hãy nạp danh "
                 "sách tin cậy của tỉnh (trustlist.json) hoặc signer.crt của các xã",
        "signature": "sai chữ ký số: chứng nhận bị sửa, bị làm giả hoặc không rõ nơi cấp",
        "key_usage": "nơi cấp không được phép ký loại chứng nhận này",
        "expiry": "chứng nhận không có giá trị vào thời điểm này",
        "schema": "nội dung chứng nhận không đúng định dạng",
        "revocation": "chứng nhận này hoặc chứng thư số của nơi cấp đã bị thu hồi",
        "holder": "chứng nhận không phải của người có thẻ CCCD này",
    },
}

# The verdict's fixed words. "valid", "not_valid", "cannot_check" (the trust material
# cannot judge the credential: not a verdict on it) and "cannot_read" (no QR code could be
# read from the picture: nothing to judge) are the big verdict (shown in a coloured box);
# "trust_set_aside" is the reason of a CANNOT CHECK whose trust list was loaded but set
# aside (its CA expired or not valid yet), instead of the "trust" reason's "load it";
# "other" is the reason of a failed step with no reason above; "card_says" heads what the
# ID card says of the facts that do not match the credential's (after "does_not_match").
WORDS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "valid": "VALID", "not_valid": "NOT VALID",
        "cannot_check": "CANNOT CHECK", "cannot_read": "CANNOT READ", "other": "not valid",
        "reason": "Reason:", "details": "Details:", "warning": "warning:",
        "matches": "matches", "does_not_match": "DOES NOT MATCH", "card_says": "card:",
        "card_in_picture": "but the card's QR was read from a picture that also holds "
                           "a credential: check the physical card",
        "not_a_date": "not a calendar date",
        "vaccination": "vaccination", "test": "test", "recovery": "recovery",
        "result": "result", "detected": "POSITIVE (detected)",
        "not_detected": "negative (not detected)", "sampled": "sampled",
        "valid_from": "valid", "valid_to": "to",
        "positive_test": "POSITIVE test result: this certificate records an infection, "
                         "it is not a negative test",
        "trust_set_aside": "the province's trust list that names this commune was loaded, "
                           "but cannot be used at this time: the CA that signed it has "
                           "expired (or is not valid yet); load the province's current "
                           "trust list with its CA certificate (ca.crt), or check this "
                           "device's date and time",
    },
    "vi": {
        "valid": "HỢP LỆ", "not_valid": "KHÔNG HỢP LỆ",
        "cannot_check": "KHÔNG KIỂM TRA ĐƯỢC", "cannot_read": "KHÔNG ĐỌC ĐƯỢC",
        "other": "không hợp lệ",
        "reason": "Lý do:", "details": "Chi tiết:", "warning": "cảnh báo:",
        "matches": "khớp", "does_not_match": "KHÔNG KHỚP", "card_says": "thẻ ghi:",
        "card_in_picture": "nhưng mã QR của thẻ được đọc từ ảnh có cả chứng nhận: "
                           "hãy kiểm tra thẻ CCCD thật",
        "not_a_date": "không phải ngày hợp lệ",
        "vaccination": "tiêm chủng", "test": "xét nghiệm", "recovery": "khỏi bệnh",
        "result": "kết quả", "detected": "DƯƠNG TÍNH",
        "not_detected": "âm tính", "sampled": "lấy mẫu",
        "valid_from": "có giá trị từ", "valid_to": "đến",
        "positive_test": "xét nghiệm DƯƠNG TÍNH: chứng nhận này ghi nhận ca nhiễm, không "
                         "phải kết quả âm tính",
        "trust_set_aside": "đã nạp danh sách tin cậy của tỉnh có tên xã này, nhưng hiện "
                           "không dùng được: chứng thư CA đã ký danh sách đã hết hạn (hoặc "
                           "chưa có hiệu lực); hãy nạp danh sách tin cậy mới nhất của tỉnh "
                           "cùng chứng thư CA (ca.crt), hoặc kiểm tra ngày giờ của thiết bị",
    },
}

# The labels of the holder's facts, in the order shown ("credential" is the UVCI, which
# provincial IT needs to revoke a wrongly issued credential). The printed card (vaxqr/card.py)
# uses the same Vietnamese words. A language with a "vaccine" label shows the vaccine on
# its own row; English keeps it on the dose's row ("2/2  Pfizer-BioNTech Comirnaty").
LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "holder": "Holder", "born": "Born", "dose": "Dose", "vaccinated": "Vaccinated",
        "type": "Type", "issuer": "Issued by", "until": "Valid until",
        "credential": "Credential", "id_card": "ID card",
    },
    "vi": {
        "holder": "Họ và tên", "born": "Ngày sinh", "dose": "Mũi tiêm", "vaccine": "Vắc xin",
        "vaccinated": "Ngày tiêm", "type": "Loại", "issuer": "Nơi cấp",
        "until": "Có giá trị đến", "credential": "Mã chứng nhận", "id_card": "CCCD",
    },
}

# How dates are shown: ISO 8601 in English (as before), day/month/year in Vietnamese.
DATE_ORDER: Final[dict[str, str]] = {"en": "yyyy-mm-dd", "vi": "dd/mm/yyyy"}
