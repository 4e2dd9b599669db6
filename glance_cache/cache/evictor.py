"""Keeping the cache within its size: eviction order and clean-up of debris.

Eviction policies are data: a policy is the key that orders entries from
first to evict to last. glance-cache evicts the least recently accessed
entries first, older fills before newer ones on a tie.
"""

import fcntl
import logging
import os
import time

LOG = logging.getLogger(__name__)

EVICTION_ORDER = {
    'lru': lambda entry: (entry.last_accessed, entry.last_modified, entry.image_id),
}


def choose_victims(entries, need_bytes, protected, policy='lru'):
    """Entries to evict, in order, to free at least ``need_bytes``.

    ``protected`` ids (being read or filled) are never chosen. The result may
    free less than asked when too little is evictable.
    """
    victims, freed = [], 0
    for entry in sorted(entries, key=EVICTION_ORDER[policy]):
        if freed >= need_bytes:
            break
        if entry.image_id in protected:
            continue
        victims.append(entry)
        freed += entry.size
    return victims


def is_abandoned(path, stall_time, now=None):
    """Whether an incomplete file's filler is gone (its lock is free) or stalled."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            age = (now or time.time()) - os.fstat(fd).st_mtime
            return age > stall_time
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def clean_directory(directory, should_remove):
    """Remove the files of ``directory`` that ``should_remove(path)`` picks.

    Returns ``(files, bytes)`` removed.
    """
    files = removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0, 0
    for name in names:
        path = os.path.join(directory, name)
        try:
            size = os.lstat(path).st_size
            if should_remove(path):
                os.unlink(path)
                files += 1
                removed += size
        except FileNotFoundError:
            continue
    return files, removed
