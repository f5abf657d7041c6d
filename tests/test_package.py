import trio_controller


def test_native_module_reports_the_crate_version() -> None:
    assert trio_controller.__version__ == "0.1.0"
