// node_tls_service.js - the HTTPS server test_tls.py's node group drives:
// node's https module, whose OpenSSL node carries inside itself (not
// Debian's libssl3) and whose TLS runs in memory BIOs. No tracing code.
//
// Each request names itself in X-Test-Token; the handler writes "served
// token=T" to stderr and answers 200 with the body "token T\n". After
// binding 127.0.0.1 port 0 it writes its port and a newline to --ready-fd
// and closes it. It must never answer anything but the requests it gets.
//
//     node node_tls_service.js --cert C --key K --ready-fd N
'use strict';
const fs = require('fs');
const https = require('https');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

const server = https.createServer(
  { cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) },
  (req, res) => {
    const token = req.headers['x-test-token'] || '?';
    process.stderr.write('served token=' + token + '\n');
    const body = 'token ' + token + '\n';
    res.writeHead(200, { 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
server.listen(0, '127.0.0.1', () => {
  const fd = parseInt(args['ready-fd'], 10);
  fs.writeSync(fd, server.address().port + '\n');
  fs.closeSync(fd);
});
