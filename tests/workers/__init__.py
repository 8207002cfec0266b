"""Functions the tests fork, by topic. Importable, so children start from goforkpy's entry point.

Importing this package registers every one of them (the session fixture does).
"""

from . import messaging as messaging
from . import processes as processes
from . import warm as warm
from .pool import (
    Dummy as Dummy,
)
from .pool import (
    capture as capture,
)
from .pool import (
    crash_on as crash_on,
)
from .pool import (
    fail_init as fail_init,
)
from .pool import (
    identity_value as identity_value,
)
from .pool import (
    initialized as initialized,
)
from .pool import (
    make_dummy as make_dummy,
)
from .pool import (
    note_then_sleep as note_then_sleep,
)
from .pool import (
    pid_of as pid_of,
)
from .pool import (
    ready_file_then_sleep as ready_file_then_sleep,
)
from .pool import (
    ready_file_then_wait_for as ready_file_then_wait_for,
)
from .pool import (
    remember as remember,
)
from .pool import (
    square as square,
)
from .results import (
    UnpicklableInChild as UnpicklableInChild,
)
from .results import (
    add as add,
)
from .results import (
    raise_value as raise_value,
)
from .results import (
    sleep_for as sleep_for,
)
