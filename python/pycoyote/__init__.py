"""pycoyote: Python bindings of the Coyote host runtime, compatible with pyCoyote.

All sizes and offsets count elements of the buffer's dtype (for RDMA, the dtype given to init_rdma), not
bytes: ``thread.local_transfer(src, dst, 16, 16)`` on int32 buffers moves 64 bytes.
"""

from ._core import (  # noqa: F401
    CoyoteBuffer,
    CoyoteReconfig,
    CoyoteThread,
    CoyoteError,
    InvalidArgumentError,
    NotSupportedError,
    ResourceExhaustedError,
    NotMappedError,
    RemoteRejectedError,
    PeerGoneError,
    CoyoteTimeoutError,
    ProtocolError,
    NoDeviceError,
    MpiError,
)
from .service import CoyoteConn  # noqa: F401

__all__ = [
    "CoyoteBuffer", "CoyoteThread", "CoyoteReconfig", "CoyoteConn", "CoyoteError", "InvalidArgumentError",
    "NotSupportedError", "ResourceExhaustedError", "NotMappedError", "RemoteRejectedError", "PeerGoneError",
    "CoyoteTimeoutError", "ProtocolError", "NoDeviceError", "MpiError",
]
