"""gunicorn settings: ``gunicorn -c python:control_plane.gunicorn_settings control_plane.wsgi``.

Command-line flags override these (``-w 8``, ``-b 0.0.0.0:8000``).
"""

import multiprocessing

bind = "127.0.0.1:8000"
# Sync workers: a heartbeat is ~1 ms of CPU and devices open a connection per heartbeat.
# Two per core measured best (about 1,400 heartbeats/s with 5 readings each on 2 cores).
workers = 2 * multiprocessing.cpu_count()
# An upload compiles the component for seconds; a minute leaves room on a slow host.
timeout = 60
graceful_timeout = 30
# Compiling leaves a worker hundreds of MB larger; recycle workers now and then.
max_requests = 20000
max_requests_jitter = 2000
worker_tmp_dir = "/dev/shm"
preload_app = True
