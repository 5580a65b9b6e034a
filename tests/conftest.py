import os
import sys

import pytest

# One thread per process: the suite runs many small ops and subprocesses on 2 cores, where a second thread per
# process only adds contention (Ray gives each 1-CPU trial one thread too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)

# Keep test runs off the user's caches and make `import searches` work from a plain clone too.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))
