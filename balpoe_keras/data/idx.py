"""IDX file reader and writer (NumPy only).

Reads the IDX format of MNIST / Fashion-MNIST (plain or gzip-compressed):
two zero bytes, a type code, the number of dimensions, the big-endian
`uint32` dimensions, then the big-endian data.
"""

import gzip
import struct

import numpy as np

_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Reads an IDX (or gzip IDX) file into a NumPy array.

    Args:
        path: file path; gzip is detected from the file's magic bytes.

    Returns:
        array with the file's shape (e.g. `(N, 28, 28)` uint8 images or
        `(N,)` uint8 labels), in native byte order.

    Raises:
        ValueError: if the header or the data size is malformed.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _DTYPES:
        raise ValueError(
            f"{path} is not an IDX file (bad magic {raw[:4]!r}). Expected "
            "e.g. train-images-idx3-ubyte(.gz) from Fashion-MNIST."
        )
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) but "
            f"the file holds {len(raw) - header} data bytes; it is "
            "truncated or corrupt. Re-download or reinstall it."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array, compress=None):
    """Writes `array` as an IDX file (gzip if `compress` or path ends `.gz`).

    Args:
        path: output path.
        array: NumPy array of a dtype in the IDX table (uint8, int8, int16,
            int32, float32, float64).
        compress: bool or None (None: by the `.gz` suffix).
    """
    array = np.asarray(array)
    codes = {d.newbyteorder("=").str: c for c, d in _DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise ValueError(f"dtype {array.dtype} has no IDX type code.")
    big = array.astype(_DTYPES[code])
    header = bytes([0, 0, code, array.ndim])
    payload = header + struct.pack(f">{array.ndim}I", *array.shape)
    payload += big.tobytes()
    if compress or (compress is None and str(path).endswith(".gz")):
        payload = gzip.compress(payload)
    with open(path, "wb") as f:
        f.write(payload)
