"""Send COUNT requests back to back on one keep-alive connection; print the status codes as JSON.

Usage: python3 burst.py HOST PORT PATH COUNT. Standard library only (runs on the test host).
"""

import http.client
import json
import sys

host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
statuses = []
conn = http.client.HTTPConnection(host, port, timeout=10)
for _ in range(count):
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
    except (http.client.HTTPException, OSError):
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
    statuses.append(response.status)
conn.close()
sys.stdout.write(json.dumps(statuses) + "\n")
