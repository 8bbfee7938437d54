"""An example storage driver for dockyard, packaged and registered like any third-party one."""

from dockyard_example_driver.driver import ExampleDriver

__all__ = ["ExampleDriver"]
