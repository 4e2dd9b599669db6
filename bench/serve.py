"""Download throughput of a cached and of an uncached image vs nginx, same file.

    .venv/bin/python bench/serve.py [--size-mib 1024] [--runs 3]

Starts a fresh node and nginx (Debian's package; installed with apt-get if
missing) on loopback, both serving the same store file, and downloads with
curl to /dev/null:

- cached: the image is in the node's cache (sent with sendfile through
  wsgi.file_wrapper);
- uncached: the image is not cached, so the download streams from a fill of
  the cache that it starts (removed from the cache between runs);
- nginx: the store file itself, sendfile on.

Prints each best-of-N time and the ratios node throughput / nginx throughput.
"""

import argparse
import os
import shutil
import subprocess

import _common as common

# "user" matters only when run as root: the scratch files are private to root.
NGINX_CONF = """
user root;
worker_processes auto;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:0;
        location / {{ root {root}; }}
    }}
}}
"""


def ensure_nginx():
    path = shutil.which('nginx') or '/usr/sbin/nginx'
    if not os.path.exists(path):
        subprocess.run(['apt-get', 'install', '-y', '-q', 'nginx-light'], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'))
    return path


def start_nginx(directory, root):
    # nginx cannot report a port it chose, so take a free one from the kernel.
    import socket
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    conf = os.path.join(directory, 'nginx.conf')
    with open(conf, 'w') as f:
        f.write(NGINX_CONF.format(dir=directory, root=root).replace(
            '127.0.0.1:0', '127.0.0.1:%d' % port))
    proc = subprocess.Popen([ensure_nginx(), '-c', conf, '-p', directory],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = 'http://127.0.0.1:%d' % port
    common.helpers.wait_for(lambda: _answers(url), 'nginx to answer', timeout=30)
    return proc, url


def _answers(url):
    result = subprocess.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', url + '/'],
                            capture_output=True, text=True)
    return result.stdout not in ('', '000')


def curl_seconds(url, token=None):
    command = ['curl', '-s', '-f', '-o', '/dev/null', '-w', '%{time_total} %{size_download}',
               url]
    if token:
        command[1:1] = ['-H', 'X-Auth-Token: %s' % token]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * common.MIB

    directory = common.workdir('gc-bench-serve-')
    source = common.make_file(os.path.join(directory, 'source.img'), args.size_mib)
    node = common.start_node(os.path.join(directory, 'node'), {
        'cache': {'max_size': str(4 * size)}})
    nginx = None
    try:
        image = common.upload(node, source)
        os.unlink(source)
        nginx, nginx_url = start_nginx(directory, node.store_dir)
        file_url = node.url + image['file']
        cache_path = '/v2/cache/%s' % image['id']

        def best(measure):
            times = []
            for _ in range(args.runs):
                seconds, got = measure()
                assert got == size, 'downloaded %d of %d bytes' % (got, size)
                times.append(seconds)
            return min(times)

        def uncached():
            node.request('DELETE', cache_path)
            common.helpers.wait_for(
                lambda: node.request('GET', '/v2/cache/jobs').json()['jobs'] == [] and
                not node.request('GET', '/v2/cache').json()['cached_images'],
                'the cache to be empty')
            result = curl_seconds(file_url, 'admin')
            return result

        t_nginx = best(lambda: curl_seconds('%s/%s' % (nginx_url, image['id'])))
        t_uncached = best(uncached)
        common.helpers.wait_for(
            lambda: image['id'] in [e['image_id'] for e in
                                    node.request('GET', '/v2/cache').json()['cached_images']],
            'the last fill to commit')
        t_cached = best(lambda: curl_seconds(file_url, 'admin'))
        t_nginx = min(t_nginx, best(lambda: curl_seconds('%s/%s' % (nginx_url, image['id']))))
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        node.stop()

    def rate(seconds):
        return args.size_mib / seconds

    print('image: %d MiB; curl to /dev/null over loopback; best of %d runs'
          % (args.size_mib, args.runs))
    print('nginx (sendfile):       %6.3f s  %7.0f MiB/s' % (t_nginx, rate(t_nginx)))
    print('node, cached:           %6.3f s  %7.0f MiB/s' % (t_cached, rate(t_cached)))
    print('node, uncached (fills): %6.3f s  %7.0f MiB/s' % (t_uncached, rate(t_uncached)))
    print('cached download   / nginx: %.2f' % (t_nginx / t_cached))
    print('uncached download / nginx: %.2f' % (t_nginx / t_uncached))


if __name__ == '__main__':
    main()
