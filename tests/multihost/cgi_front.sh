#!/bin/sh
# busybox httpd CGI of the front host (test_multihost.py, busybox fronts),
# installed as DOCROOT/cgi-bin/work: GET /cgi-bin/work/<k> logs a line, asks
# the back service (URL prefix BACK_URL) with curl, logs its answer and
# returns it. BACK_INSECURE set: the back's certificate is not checked.
k=${PATH_INFO#/}
case $k in ''|*[!0-9]*) k=bad ;; esac
echo "front handling k=$k" >&2
answer=$(curl -sS -m 10 ${BACK_INSECURE:+-k} "$BACK_URL$k")
echo "front k=$k back said: $answer" >&2
echo "Content-Type: text/plain"
echo ""
echo "front k=$k: $answer"
