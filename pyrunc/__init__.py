"""pyrunc: an OCI runtime (runtime-spec 1.3) in Python, a drop-in for runc (see README.md)."""

VERSION = "0.1.0"
OCI_VERSION = "1.3.0"  # the runtime-spec version pyrunc implements
MYPY = False  # pyrunc._typing's flag, repeated: this module imports nothing of pyrunc


def fast_imports() -> None:
    """Load pyrunc's own modules straight from their .pyc: what the launcher does before the CLI.

    importlib's path finder and source loader are generic Python code that, for each module, try
    the extension suffixes (stat after stat), open the .pyc through io's buffered layers and run
    some hundred bytecodes of checks: ~75k instructions a module, 3-4 ms of a `run`. This finder
    does what they do for a pure-Python package: one stat of the source (package first, as the path
    finder), one read of the .pyc, the same validity check (magic, timestamp flags, mtime and size
    of the source). Anything else (no .pyc, a stale or hash-based one, a pycache_prefix) is left to
    the stock machinery, which also writes the .pyc again. The spec carries origin and cached as
    the stock loader's, so __file__, __cached__ and __spec__ read the same.
    """
    import posix
    import sys
    from _frozen_importlib import ModuleSpec
    from _frozen_importlib_external import MAGIC_NUMBER
    from marshal import loads

    if MYPY:
        from collections.abc import Sequence
        from importlib.abc import Loader
        from types import ModuleType
    else:
        Loader = object  # importlib.abc costs an import; the protocol is all the machinery uses

    tag = "." + str(sys.implementation.cache_tag) + ".pyc"

    def _read(path: str) -> bytes | None:
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError:
            return None
        try:
            # Its size first: a read into a larger buffer costs an mmap and a shrinking mremap.
            size = posix.fstat(fd).st_size
            data = posix.read(fd, size)
            while len(data) < size:
                more = posix.read(fd, size - len(data))
                if not more:
                    break
                data += more
        finally:
            posix.close(fd)
        return data

    def _locate(d: str, tail: str) -> tuple[str, str, int, int] | None:
        """(source, pyc, mtime, size) of `tail` in directory `d`: a package before a module."""
        for src, pyc in ((f"{d}/{tail}/__init__.py", f"{d}/{tail}/__pycache__/__init__{tag}"),
                         (f"{d}/{tail}.py", f"{d}/__pycache__/{tail}{tag}")):
            try:
                st = posix.stat(src)
            except OSError:
                continue
            return src, pyc, int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF
        return None

    class PycLoader(Loader):
        def find_spec(self, name: str, path: "Sequence[str] | None" = None,
                      target: "ModuleType | None" = None) -> ModuleSpec | None:
            if not path or not name.startswith("pyrunc."):
                return None
            found = _locate(path[0], name.rpartition(".")[2])
            data = _read(found[1]) if found else None
            if (found is None or data is None or data[:4] != MAGIC_NUMBER
                    or data[4:8] != b"\0\0\0\0"  # timestamp-based (not a hash-based pyc)
                    or int.from_bytes(data[8:12], "little") != found[2]
                    or int.from_bytes(data[12:16], "little") != found[3]):
                return None
            src, pyc = found[0], found[1]
            package = src.endswith("/__init__.py")
            spec = ModuleSpec(name, self, origin=src, is_package=package)
            spec.has_location = True
            spec.cached = pyc
            spec.loader_state = data
            if package:
                spec.submodule_search_locations = [src.rpartition("/")[0]]
            return spec

        def create_module(self, spec: ModuleSpec) -> None:
            return None

        def exec_module(self, module: "ModuleType") -> None:
            spec = module.__spec__
            assert spec is not None
            data, spec.loader_state = spec.loader_state, None
            exec(loads(memoryview(data)[16:]), module.__dict__)  # noqa: S102 — the module's code

    sys.meta_path.insert(0, PycLoader())
    _fast_extensions()


def _fast_extensions() -> None:
    """The standard library's extension modules (`_json`, which every verb loads) found by their
    one file name in lib-dynload: the path finder would first list that directory (~0.17 ms of a
    `state`). A name that is built in, or has no such file, goes on to the stock finders as before
    (the standard library has no pure-Python module of an extension module's name)."""
    import posix
    import sys
    from _frozen_importlib_external import ExtensionFileLoader, spec_from_file_location
    from _imp import extension_suffixes

    if MYPY:
        from collections.abc import Sequence
        from importlib.machinery import ModuleSpec
        from types import ModuleType

    dynload = next((d for d in sys.path if d.endswith("/lib-dynload")), None)
    ext, builtin = extension_suffixes()[0], sys.builtin_module_names

    class ExtensionFinder:
        @staticmethod
        def find_spec(name: str, path: "Sequence[str] | None" = None,
                      target: "ModuleType | None" = None) -> "ModuleSpec | None":
            if path is not None or name in builtin or "." in name:
                return None
            so = f"{dynload}/{name}{ext}"
            try:
                posix.stat(so)
            except OSError:
                return None
            return spec_from_file_location(name, so, loader=ExtensionFileLoader(name, so))

    if dynload:
        sys.meta_path.insert(1, ExtensionFinder())
