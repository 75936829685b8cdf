#!/bin/sh
# busybox httpd CGI of the back host (test_multihost.py, first scenario),
# installed as DOCROOT/cgi-bin/work: GET /cgi-bin/work/<k> logs one line to
# stderr (busybox httpd's stderr) and answers "back k=<k> ok".
k=${PATH_INFO#/}
case $k in ''|*[!0-9]*) k=bad ;; esac
echo "back handling k=$k" >&2
echo "Content-Type: text/plain"
echo ""
echo "back k=$k ok"
