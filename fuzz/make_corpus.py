#!/usr/bin/python3
"""Writes the seed corpora of the file-reader fuzzers, fuzz/corpus/<format>/:
small valid files of every dtype and layout the readers accept, and a few
hostile ones (truncated, header longer than the file, overflowing shapes,
offsets outside the data, unknown dtypes, deep nesting) so the fuzzer
starts next to the checks.  Run from the repository root:
    /usr/bin/python3 fuzz/make_corpus.py
"""
import gzip
import io
import json
import os
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(fmt, name, data):
    d = os.path.join(ROOT, fmt)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors ----
def st(entries, meta=None, header=None, pad=True):
    """entries: list of (name, dtype, shape, bytes)"""
    h, blob = {}, b""
    for name, dt, shape, data in entries:
        h[name] = {"dtype": dt, "shape": shape,
                   "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if meta is not None:
        h["__metadata__"] = meta
    text = header if header is not None else json.dumps(h).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


f32 = np.arange(6, dtype="<f4").tobytes()
put("safetensors", "f32", st([("w", "F32", [2, 3], f32)]))
put("safetensors", "mixed", st([
    ("a", "F64", [2], np.array([1.5, -2], "<f8").tobytes()),
    ("b", "I64", [3], np.array([1, -2, 3], "<i8").tobytes()),
    ("c", "BOOL", [2], b"\x01\x00"),
    ("d", "F16", [2], np.array([1, 0.5], "<f2").tobytes()),
    ("e", "BF16", [2], b"\x80\x3f\x00\x40"),
    ("f", "I8", [2], b"\x7f\x80"),
    ("g", "I16", [1], b"\x01\x80"),
    ("h", "I32", [1], b"\xff\xff\xff\x7f"),
    ("i", "U8", [1], b"\xff"),
    ("j", "U16", [1], b"\xff\xff"),
    ("k", "U32", [1], b"\xff\xff\xff\xff"),
    ("s", "F32", [], np.array(3, "<f4").tobytes()),
    ("z", "F32", [0, 3], b""),
], meta={"format": "pt", "note": "x"}))
lgrad_meta = {"__lgrad__": json.dumps({
    "format": "lgrad", "version": 1, "tables": [[], ["opt"]],
    "leaves": [[["w"], "t", "w"], [["opt", "lr"], "f", "opt.lr"],
               [["opt", 1], "i", "opt.1"], [["flag"], "b", "flag"],
               [["name"], "s", "name"], [["raw"], "x", "raw"]]}),
    "opt.lr": "0.10000000000000001", "opt.1": "3", "flag": "true",
    "name": "adam", "raw": "AAE="}
put("safetensors", "lgrad_nested", st([("w", "F32", [2, 3], f32)],
                                      meta=lgrad_meta))
put("safetensors", "empty", st([]))
put("safetensors", "truncated", st([("w", "F32", [2, 3], f32)])[:-5])
put("safetensors", "header_too_long",
    struct.pack("<Q", 1 << 40) + b'{"w":{}}')
put("safetensors", "overflow_shape", st([], header=json.dumps(
    {"w": {"dtype": "F32", "shape": [1 << 62, 1 << 62],
           "data_offsets": [0, 16]}}).encode()))
put("safetensors", "offsets_outside", st([], header=json.dumps(
    {"w": {"dtype": "F32", "shape": [2],
           "data_offsets": [0, 4096]}}).encode()))
put("safetensors", "bad_dtype", st([], header=json.dumps(
    {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}).encode())
    + b"\0" * 8)
put("safetensors", "deep_nesting", st([], header=b'{"__metadata__":' +
                                      b"[" * 200 + b"]" * 200 + b"}"))
put("safetensors", "overlap", st([], header=json.dumps(
    {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode())
    + b"\0" * 12)


# ---- npy ----
def npy(a, version=None, fortran=False):
    buf = io.BytesIO()
    if fortran:
        a = np.asfortranarray(a)
    np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


m = np.arange(6).reshape(2, 3)
put("npy", "f4", npy(m.astype("<f4")))
put("npy", "f8_fortran", npy(m.astype("<f8"), fortran=True))
put("npy", "i8_v2", npy(m.astype("<i8"), version=(2, 0)))
put("npy", "b1_v3", npy(np.array([True, False]), version=(3, 0)))
put("npy", "i1", npy(np.array([-1, 2], "i1")))
put("npy", "u2_be", npy(np.array([1, 65535], ">u2")))
put("npy", "i4_be", npy(np.array([[1, -2]], ">i4")))
put("npy", "f2", npy(np.array([0.5, -1], "<f2")))
put("npy", "f8_be", npy(np.array([1.25], ">f8")))
put("npy", "scalar", npy(np.array(2.5, "<f4")))
put("npy", "empty", npy(np.zeros((0, 3), "<f4")))
put("npy", "regress_fortran_2x0", npy(np.zeros((2, 0), "<f8"), fortran=True))
put("npy", "rank8", npy(np.zeros((1,) * 8, "<f4")))
put("npy", "truncated", npy(m.astype("<f8"))[:-3])


def npy_raw(header, payload):
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + \
        payload


put("npy", "object", npy_raw(b"{'descr': '|O', 'fortran_order': False, "
                             b"'shape': (1,), }", b"\0" * 8))
put("npy", "overflow_shape", npy_raw(
    b"{'descr': '<f4', 'fortran_order': False, "
    b"'shape': (4611686018427387904, 4), }", b"\0" * 16))
put("npy", "structured", npy_raw(
    b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
    b"\0" * 4))
put("npy", "header_too_long", b"\x93NUMPY\x02\x00" +
    struct.pack("<I", 1 << 31) + b"{'descr': '<f4'")


# ---- IDX ----
def idx(type_byte, shape, payload):
    return bytes([0, 0, type_byte, len(shape)]) + \
        b"".join(struct.pack(">I", d) for d in shape) + payload


put("idx", "u8", idx(0x08, [2, 3], bytes(range(6))))
put("idx", "i8", idx(0x09, [3], b"\x80\x00\x7f"))
put("idx", "i16", idx(0x0B, [2], struct.pack(">hh", -1, 300)))
put("idx", "i32", idx(0x0C, [2], struct.pack(">ii", -1, 1 << 30)))
put("idx", "f32", idx(0x0D, [1, 2], struct.pack(">ff", 0.5, -2)))
put("idx", "f64", idx(0x0E, [2], struct.pack(">dd", 1e300, -0.0)))
put("idx", "labels_gz", gzip.compress(idx(0x08, [5], bytes([1, 2, 3, 9, 0])),
                                      mtime=0))
put("idx", "images_gz", gzip.compress(idx(0x08, [2, 4, 4], bytes(32)),
                                      mtime=0))
put("idx", "two_members_gz", gzip.compress(idx(0x08, [4], b""), mtime=0) +
    gzip.compress(b"\1\2\3\4", mtime=0))
put("idx", "truncated", idx(0x08, [10], bytes(4)))
put("idx", "truncated_gz", gzip.compress(idx(0x08, [64], bytes(64)),
                                         mtime=0)[:-12])
put("idx", "overflow_shape", idx(0x0E, [0xFFFFFFFF] * 4, b""))
put("idx", "bad_type", idx(0x0A, [1], b"\0"))
put("idx", "zero_dims", idx(0x08, [], b"\7"))
put("idx", "bomb_gz", gzip.compress(idx(0x08, [1 << 20], bytes(1 << 20)),
                                    mtime=0))
# regressions: inputs the fuzzer failed on once
put("idx", "regress_zero_dim_2e46",
    idx(0x0E, [0xFFFFFFFF, 0xFFFFFF00, 0x400000, 0], b""))
put("idx", "regress_garbage_after_member",
    gzip.compress(idx(0x08, [4], b"\1\2\3\4"), mtime=0) + b":")
_member = gzip.compress(idx(0x08, [3], b"abc"), mtime=0)
_noise = gzip.compress(bytes((i * 7919) % 251 for i in range(3000)), mtime=0)
put("idx", "regress_corrupt_after_data",
    _member + _noise[:200] + b"XXXXXXXX" + _noise[208:])
_trunc = gzip.compress(idx(0x08, [0x00080808], bytes(0x00080808 + 4096)),
                       mtime=0)
put("idx", "regress_truncated_after_data", _trunc[:len(_trunc) // 2])

# ---- CSV (the first byte picks the options, see fuzz_csv.c) ----
# bit 0-1 delimiter (, ; tab space), bit 2 header, bits 3-4 dtype
put("csv", "plain", b"\x00" + b"1,2,3\n4,5,6\n")
put("csv", "header_crlf", b"\x04" + b"a,b\r\n1.5,-2e3\r\n,nan\r\n")
put("csv", "quoted", b"\x04" + b'"x ""1""",y\n"1",  2 \n')
put("csv", "semicolon_f64", b"\x09" + b"1;2\n\n3;inf\n")
put("csv", "tab_int", b"\x12" + b"1\t-9223372036854775808\n2\t3\n")
put("csv", "bom", b"\x04" + b"\xef\xbb\xbfa,b\n1,2\n")
put("csv", "ragged", b"\x00" + b"1,2\n3\n")
put("csv", "not_number", b"\x00" + b"1,x\n")
put("csv", "unterminated_quote", b"\x04" + b'"a,b\n1,2\n')
put("csv", "int_overflow", b"\x10" + b"99999999999999999999\n")
put("csv", "empty", b"\x04")
