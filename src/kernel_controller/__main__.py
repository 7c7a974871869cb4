"""Entry point: ``python -m kernel_controller`` and the ``kernel-controller`` script."""

from kernel_controller.cli import main


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
