"""A platform wheel when the package carries the `loader` binary (as
`make wheel` stages it in lsio_loader/bin/), else a pure one."""

import os
from pathlib import Path

from setuptools import Distribution, setup

options = {}
if (Path(__file__).resolve().parent / "lsio_loader" / "bin" / "loader").exists():
    from setuptools.command.bdist_wheel import bdist_wheel

    class BinaryDistribution(Distribution):
        """Installs into platlib, as a package with native code does."""

        def has_ext_modules(self) -> bool:
            return True

    class PlatformWheel(bdist_wheel):
        """py3-none-<platform>: the binary does not link against Python, so
        any Python 3 on that OS and architecture will do."""

        def finalize_options(self) -> None:
            plat = os.environ.get("LSIO_LOADER_WHEEL_PLAT")
            if plat:
                self.plat_name = plat
            super().finalize_options()

        def get_tag(self) -> tuple[str, str, str]:
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    options = {"distclass": BinaryDistribution, "cmdclass": {"bdist_wheel": PlatformWheel}}

setup(**options)
