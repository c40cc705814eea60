"""Package discovery for the one import namespace ``safepce`` (metadata: pyproject.toml).

The repository keeps ``tabular/``, ``theory/`` and ``bounds/`` at its top level; the wheel (and an
editable install) provides them as ``safepce.tabular``, ``safepce.theory`` and ``safepce.bounds``.
Every package under those folders is found here, so a new subpackage needs no edit.
"""

from setuptools import find_packages, setup

SUBPACKAGES = ("tabular", "theory", "bounds")

packages = ["safepce"]
package_dir = {"safepce": "safepce"}
for root in SUBPACKAGES:
    packages += [f"safepce.{root}"] + [f"safepce.{root}.{sub}" for sub in find_packages(root)]
    package_dir[f"safepce.{root}"] = root

setup(packages=packages, package_dir=package_dir)
