/**
 * The drill's guestfwd program (qemu.ts, GuestForward): QEMU starts one for each
 * TCP connection a guest opens to the share's address, with that connection as
 * its stdin and stdout, and it relays the bytes both ways to the drill's smbd
 * on this host's loopback. Run as `node share-relay.js PORT`; it ends when
 * either side closes.
 */
import { connect, Socket } from 'node:net';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: share-relay.js PORT (the smbd port on 127.0.0.1)\n');
  process.exit(2);
}
// fd 0 is the guest's connection (a socket QEMU made); stdout is the same socket.
const guest = new Socket({ fd: 0, readable: true, writable: true, allowHalfOpen: true });
const server = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
guest.pipe(server);
server.pipe(guest);
const end = () => {
  guest.destroy();
  server.destroy();
};
guest.on('error', end);
server.on('error', end);
guest.on('close', end);
server.on('close', end);
