"""Send COUNT requests back to back on one keep-alive connection; print the status codes as JSON.

Usage: python3 burst.py HOST PORT PATH COUNT. Standard library only (runs on the test host). HTTPS
without certificate checks: the server's certificate is self-signed.
"""

import http.client
import json
import ssl
import sys

host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
context = ssl._create_unverified_context()


def connect() -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(host, port, timeout=10, context=context)


statuses = []
conn = connect()
for _ in range(count):
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
    except (http.client.HTTPException, OSError):
        conn.close()
        conn = connect()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
    statuses.append(response.status)
conn.close()
sys.stdout.write(json.dumps(statuses) + "\n")
