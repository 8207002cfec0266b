"""PyInstaller hook: children and helpers load goforkpy's modules by name, unseen by the
import analysis, and functions may travel by value (cloudpickle)."""

from PyInstaller.utils.hooks import collect_submodules  # type: ignore[import-untyped,import-not-found,unused-ignore]

_OPTIONAL = ("goforkpy._pyinstaller", "goforkpy.dask")  # the hook itself; Dask's extra

hiddenimports = [
    *collect_submodules("goforkpy", filter=lambda name: not name.startswith(_OPTIONAL)),
    "cloudpickle",
]
