// A discarding SMTP server on Node's smtp-server (nodemailer): a peer row of bench/run.py.
// Usage: node smtp_server.js PORT
// It reads every message to its end and answers 250, keeping nothing, as aiosmtpd's
// discarding handler and mailroom's --store none do. AUTH is off (so no client must log in)
// and nothing is logged per message.
"use strict";
const { SMTPServer } = require("smtp-server");

const port = Number(process.argv[2]);
const server = new SMTPServer({
  disabledCommands: ["AUTH"],
  logger: false,
  size: 50 * 1024 * 1024,
  onData(stream, session, callback) {
    stream.on("data", () => {});
    stream.on("end", () => callback(null, "Ok"));
  },
});
server.on("error", (err) => console.error(err));
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
