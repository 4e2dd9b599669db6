"""Check (or with --write, regenerate) the sample files under etc/.

The samples are generated from the code by oslo-config-generator and
oslopolicy-sample-generator; CI runs this check so they never go stale.
"""

import difflib
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

SAMPLES = [
    ('etc/glance-cache.conf.sample',
     ['oslo-config-generator', '--config-file', 'etc/oslo-config-generator/glance-cache.conf']),
    ('etc/policy.yaml.sample',
     ['oslopolicy-sample-generator', '--config-file', 'etc/oslo-policy-generator/policy.conf']),
]


def generate(command, output):
    subprocess.run([os.path.join(BIN, command[0]), *command[1:], '--output-file', output],
                   cwd=ROOT, check=True, stderr=subprocess.DEVNULL)


def main():
    write = '--write' in sys.argv[1:]
    stale = []
    for sample, command in SAMPLES:
        path = os.path.join(ROOT, sample)
        if write:
            generate(command, path)
            print('wrote %s' % sample)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            fresh = os.path.join(tmp, 'sample')
            generate(command, fresh)
            with open(fresh) as f:
                new = f.readlines()
        try:
            with open(path) as f:
                old = f.readlines()
        except FileNotFoundError:
            old = []
        if old != new:
            stale.append(sample)
            sys.stdout.writelines(difflib.unified_diff(old, new, sample, 'generated'))
    if stale:
        print('\nStale samples: %s. Run "make samples" and commit them.' % ', '.join(stale))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
