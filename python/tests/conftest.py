"""pytest set-up for the pycoyote suites: the sim backend, one vFPGA device per test process."""
import os

os.environ.setdefault("COYOTE_BACKEND", "sim")
