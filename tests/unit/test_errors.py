"""The error hierarchy maps to Docker's HTTP statuses."""

from dockyard import errors


def test_status_for():
    assert errors.status_for(errors.NotFound("No such image: x")) == 404
    assert errors.status_for(errors.Conflict("x")) == 409
    assert errors.status_for(errors.InvalidParameter("x")) == 400
    assert errors.status_for(errors.NotModified("x")) == 304
    assert errors.status_for(errors.NotSupportedByDriver("x")) == 501
    assert errors.status_for(RuntimeError("bug")) == 500


def test_driver_not_found_names_available_and_why():
    exc = errors.DriverNotFound("storage", "zfs", {"vfs": None, "btrfs": "not a btrfs file system"})
    assert "zfs" in str(exc) and "Available: vfs" in str(exc) and "btrfs (not a btrfs file system)" in str(exc)
