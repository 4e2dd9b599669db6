#!/usr/bin/env python3
"""Bring up a real Keystone on loopback (see tests/keystone/env.py); Ctrl-C stops it."""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.keystone import env  # noqa: E402

if __name__ == '__main__':
    argparse.ArgumentParser(description=__doc__).parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    env.main()
