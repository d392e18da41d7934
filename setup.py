"""Packaging beside setup.cfg: ships the top-level zoo/ inside the wheel as vidgen_tf/zoo.

The presets stay in zoo/ at the top of the repository; the mapping below installs
that folder as the data package `vidgen_tf.zoo`, which `vidgen_tf.presets.zoo_dir`
finds with importlib.resources. setup.cfg cannot add a mapped package to
`packages = find:`, so the package list is made here; everything else is in setup.cfg.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["vidgen_tf", "vidgen_tf.*"]) + ["vidgen_tf.zoo"],
    package_dir={"vidgen_tf.zoo": "zoo"},
)
