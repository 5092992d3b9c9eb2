// A real HTTP/2 server that sends ORIGIN frames (RFC 8336): Node.js's `http2` module (nghttp2
// underneath) with its `origins` option. Started by the interop suite on loopback.
//
// Arguments (JSON in argv[2]): {listen: [[addr, port], ...], cert, key, origins: [..] | null,
//   refuse: [names], altsvc: "h3=..." | null}: a request whose :authority names one of
//   `refuse` on a connection opened for another name (SNI) gets 421; every other request gets
//   `site NAME` (NAME = :authority without port). With `altsvc`, every session sends an ALTSVC
//   frame (RFC 7838 §4) on stream 0 for the connection's own origin (`session.altsvc`).
'use strict';
const http2 = require('http2');
const fs = require('fs');

const conf = JSON.parse(process.argv[2]);
const options = {
  cert: fs.readFileSync(conf.cert),
  key: fs.readFileSync(conf.key),
  allowHTTP1: false,
};
if (conf.origins) {
  options.origins = conf.origins;
}

function handler(stream, headers) {
  const authority = String(headers[':authority'] || '');
  const name = authority.replace(/:\d+$/, '').toLowerCase();
  const sni = String(stream.session.socket.servername || '').toLowerCase();
  if (conf.refuse.includes(name) && sni !== name) {
    stream.respond({ ':status': 421, 'content-type': 'text/plain' });
    stream.end('misdirected\n');
    return;
  }
  stream.respond({ ':status': 200, 'content-type': 'text/plain', server: 'node-origin' });
  stream.end(`site ${name}\n`);
}

for (const [addr, port] of conf.listen) {
  const server = http2.createSecureServer(options);
  server.on('stream', handler);
  if (conf.altsvc) {
    server.on('session', (session) => {
      const name = session.socket && session.socket.servername;
      if (name) {
        session.altsvc(conf.altsvc, `https://${name}:${port}`);
      }
    });
  }
  server.on('error', (e) => {
    console.error(`listen ${addr}:${port}: ${e.message}`);
    process.exit(1);
  });
  server.listen(port, addr, () => console.log(`listening on ${addr}:${port}`));
}
