"""pycoyote.service: a client of Coyote's background service (cConn; beyond pyCoyote).

A service (C++ ``coyote::cService``) runs registered functions ``cFunc<ret, args...>`` for client processes.
Arguments and the return value travel as raw bytes in the sizes the function declares, so a Python client must
say the C types: pass NumPy scalars (``np.uint64(5)``, ``np.float32(0.5)``), or plain Python numbers with
``types=`` (one dtype per argument), or ``bytes`` for a trivially copyable struct; ``ret`` is the return type
(a dtype, or a byte count for a struct, returned as ``bytes``). Values are range-checked before anything is
sent; errors of the service (unknown function, a function that threw, a deadline, a closed connection) raise
the pycoyote exception carrying cConn's message.
"""
import math
import numbers

import numpy as np

from ._core import CoyoteTimeoutError, InvalidArgumentError, _Conn

_KINDS = "biufc"  # bool, signed, unsigned, floating, complex: fixed-size numeric types


def _dtype(spec, what):
    try:
        dt = np.dtype(spec)
    except TypeError as e:
        raise InvalidArgumentError(f"{what}: {spec!r} is not a NumPy dtype ({e})") from None
    if dt.kind not in _KINDS or dt.subdtype is not None:
        raise InvalidArgumentError(f"{what}: dtype {dt} is not a fixed-size numeric type")
    if not dt.isnative:
        raise InvalidArgumentError(f"{what}: dtype {dt} is not in the machine's byte order")
    return dt


def _check_range(value, dt, what):
    if dt.kind == "b":
        if not isinstance(value, (bool, np.bool_)) and value not in (0, 1):
            raise InvalidArgumentError(f"{what}: {value!r} is not a bool")
    elif dt.kind in "iu":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise InvalidArgumentError(f"{what}: {value!r} is not an integer (type {dt})")
        info = np.iinfo(dt)
        if not info.min <= int(value) <= info.max:
            raise InvalidArgumentError(f"{what}: {value} is out of range for {dt} [{info.min}, {info.max}]")
    elif not isinstance(value, numbers.Number):
        raise InvalidArgumentError(f"{what}: {value!r} is not a number (type {dt})")
    elif dt.kind == "f" and math.isfinite(value) and abs(value) > float(np.finfo(dt).max):
        raise InvalidArgumentError(f"{what}: {value} is out of range for {dt} (it would become infinite)")


def _encode(value, spec, index):
    """The bytes of argument `index`."""
    what = f"argument {index}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        if spec is not None:
            raise InvalidArgumentError(f"{what}: raw bytes take no type (got {spec!r})")
        return bytes(value)
    if spec is None:
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if not isinstance(value, np.generic):
            raise InvalidArgumentError(
                f"{what}: {type(value).__name__} {value!r} has no C type: pass a NumPy scalar (np.int32(...)) "
                "or give types=")
        return _dtype(value.dtype, what).type(value).tobytes()
    dt = _dtype(spec, what)
    if isinstance(value, np.ndarray) and value.size != 1:
        raise InvalidArgumentError(f"{what}: an array of {value.size} elements where one {dt} is due")
    _check_range(value.item() if isinstance(value, (np.generic, np.ndarray)) else value, dt, what)
    return np.array(value, dtype=dt).tobytes()


def _decoder(ret):
    """(byte count, bytes -> value) of return type `ret`."""
    if ret is None:  # np.dtype(None) would be float64
        raise InvalidArgumentError("ret: the function's return type is required (a NumPy dtype, or a byte count)")
    if isinstance(ret, numbers.Integral) and not isinstance(ret, bool):
        if not 0 < ret <= 1 << 16:
            raise InvalidArgumentError(f"ret: a byte count must be in 1 .. 65536, got {ret}")
        return int(ret), bytes
    dt = _dtype(ret, "ret")
    return dt.itemsize, lambda b: np.frombuffer(b, dtype=dt, count=1)[0].item()


class CoyoteConn:
    """A connection to a service (``cConn``): ``CoyoteConn(sock_name)`` or ``CoyoteConn.for_service(name, vfid)``
    for a local service, ``CoyoteConn.remote(host, port, key_file)`` for a remote one. A context manager."""

    def __init__(self, sock_name, *, _conn=None):
        self._conn = _conn if _conn is not None else _Conn(str(sock_name))
        self._ret = {}  # task id -> (size, decode) of the tasks submitted by itask

    @classmethod
    def for_service(cls, name, vfid=0, device=0):
        """The local service ``name`` of vFPGA ``vfid`` of ``device``
        (socket /tmp/coyote-daemon-dev-<device>-vfid-<vfid>-<name>)."""
        return cls(f"/tmp/coyote-daemon-dev-{int(device)}-vfid-{int(vfid)}-{name}")

    @classmethod
    def remote(cls, host, port, key_file):
        """A remote service (cService with remote=True) at host:port, presenting the key held in ``key_file``."""
        return cls(None, _conn=_Conn.remote(host, port, str(key_file)))

    def _payload(self, args, types):
        if isinstance(types, (str, bytes)) or (types is not None and not hasattr(types, "__len__")):
            raise InvalidArgumentError(f"types: a sequence with one dtype per argument, got {types!r}")
        if types is not None and len(types) != len(args):
            raise InvalidArgumentError(f"types: {len(types)} types for {len(args)} arguments")
        return b"".join(_encode(a, None if types is None else types[i], i) for i, a in enumerate(args))

    def itask(self, fid, *args, ret, types=None):
        """Submits function ``fid`` with ``args``; returns the task id at once (Coyote's iTask)."""
        if not isinstance(fid, numbers.Integral) or isinstance(fid, bool):
            raise InvalidArgumentError(f"fid: the function id must be an integer, got {type(fid).__name__} {fid!r}")
        if not -2**31 <= int(fid) < 2**31:
            raise InvalidArgumentError(f"fid: {int(fid)} is out of the range of a function id (int32)")
        size, decode = _decoder(ret)
        tid = self._conn.submit(int(fid), self._payload(args, types), size)
        self._ret[tid] = (size, decode)
        return tid

    def task(self, fid, *args, ret, types=None):
        """Runs function ``fid`` with ``args`` and returns its return value (Coyote's task)."""
        return self.wait_task(self.itask(fid, *args, ret=ret, types=types))

    def wait_task(self, tid):
        """Waits for task ``tid`` (from itask) and returns its return value; the task is forgotten afterwards
        (also when it failed; after a deadline it stays pending and can be waited for again)."""
        _, decode = self._spec(tid)
        try:
            raw = self._conn.wait_result(tid)
        except CoyoteTimeoutError:
            raise
        except Exception:
            del self._ret[tid]
            raise
        del self._ret[tid]
        return decode(raw)

    def is_task_completed(self, tid):
        """Whether task ``tid`` has completed, successfully or not (Coyote's isTaskCompleted); raises
        InvalidArgumentError for an id this connection does not hold (never issued, or already waited for)."""
        return self._conn.is_task_completed(int(tid))

    def get_task_return_value(self, tid):
        """The return value of completed task ``tid`` (it may be read again, as in Coyote: release_task forgets
        it); raises the task's error, or InvalidArgumentError when it is unknown or not completed (Coyote's
        getTaskReturnValue)."""
        _, decode = self._spec(tid)
        return decode(self._conn.take_result(tid))

    def release_task(self, tid):
        """Forgets completed task ``tid`` and its result; False when it is unknown or still running. A client that
        polls with is_task_completed and reads with get_task_return_value calls it for every task it is done with
        (wait_task and task forget by themselves)."""
        self._spec(tid)
        if not self._conn.release_task(int(tid)):
            return False
        del self._ret[int(tid)]
        return True

    def _spec(self, tid):
        try:
            return self._ret[int(tid)]
        except KeyError:
            raise InvalidArgumentError(f"unknown task id {tid}") from None

    def close(self):
        """Closes the connection (tasks still queued keep running on the service; their results are dropped)."""
        self._conn.close()

    @property
    def closed(self):
        return self._conn.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Coyote's C++ names.
    iTask = itask
    isTaskCompleted = is_task_completed
    getTaskReturnValue = get_task_return_value
    releaseTask = release_task


__all__ = ["CoyoteConn"]
