import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["MAXVIT_GAN_CPU_THREADS"] = "1"  # training subprocesses too: 2 busy threads on 2 shared cores crawl

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
