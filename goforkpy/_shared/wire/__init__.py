"""The bytes of payloads and results, by concern.

- ``codec``: objects to bytes and back (marshal, pickle 5, cloudpickle).
- ``tag``: the HMAC-SHA256 integrity tag, hashed on all CPUs for big files.
- ``files``: the file layout, and writing and reading files safely.

The names the rest of goforkpy uses are re-exported here.
"""

from .codec import BLOBS as BLOBS
from .codec import MARSHAL as MARSHAL
from .codec import PICKLE as PICKLE
from .codec import decode as decode
from .codec import dumps as dumps
from .codec import dumps_parts as dumps_parts
from .codec import encode as encode
from .codec import loads as loads
from .codec import os_handle_kind as os_handle_kind
from .files import SEALED_FROM as SEALED_FROM
from .files import assemble as assemble
from .files import is_private as is_private
from .files import read_file as read_file
from .files import read_sealed as read_sealed
from .files import write_assembled as write_assembled
from .files import write_file as write_file
from .files import write_sealed as write_sealed
from .tag import KEY_SIZE as KEY_SIZE
from .tag import hmac_sha256 as hmac_sha256
from .tag import new_key as new_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .files import Assembled as Assembled
    from .files import Decoded as Decoded
