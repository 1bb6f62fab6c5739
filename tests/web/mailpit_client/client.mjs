// Mailpit's own API client library, unchanged, reading from mailroom. Run by
// tests/web/test_mailpit_client.py as `node client.mjs BASE_URL [USER PASSWORD]`; prints one
// JSON object of what the client got, which the test checks.
import { MailpitClient } from "mailpit-api";

const [baseURL, username, password] = process.argv.slice(2);
const mailpit = new MailpitClient(baseURL, username ? { auth: { username, password } } : undefined);

const out = {};
out.info = await mailpit.getInfo();
out.list = await mailpit.listMessages(0, 10);
out.search = await mailpit.searchMessages({ query: "subject:Quarterly has:attachment" });
out.waited = await mailpit.waitForMessage({ query: "from:carol@example.test" }, { timeout: 5000, interval: 100 });
const id = out.search.messages[0].ID;
out.message = await mailpit.getMessageSummary(id);
out.latest = await mailpit.getMessageSummary();
out.headers = await mailpit.getMessageHeaders(id);
out.source = await mailpit.getMessageSource(id);
const attachment = out.message.Attachments[0];
const blob = await mailpit.getMessageAttachment(id, attachment.PartID);
out.attachment = { type: blob.type, text: await blob.text() };
out.html = await mailpit.renderMessageHTML(id);
out.text = await mailpit.renderMessageText(id);
out.setUnread = await mailpit.setReadStatus({ IDs: [id], Read: false });
out.afterUnread = await mailpit.listMessages();
out.configuration = await mailpit.getConfiguration();
out.deleted = await mailpit.deleteMessages({ IDs: [id] });
out.afterDelete = await mailpit.listMessages();
out.deletedBySearch = await mailpit.deleteMessagesBySearch({ query: "subject:earlier" });
out.afterSearchDelete = await mailpit.waitForMessages({ count: 0 }, { timeout: 5000, interval: 100 });
out.sent = await mailpit.sendMessage({
  From: { Email: "app@example.test", Name: "The App" },
  To: [{ Email: "user@example.test", Name: "A User" }],
  Bcc: ["audit@example.test"],
  Subject: "Sent over the API",
  Text: "Plain words.",
  HTML: "<p>Rich words.</p>",
  Attachments: [{ Content: Buffer.from("hello file").toString("base64"), Filename: "note.txt" }],
  Headers: { "X-Campaign": "welcome" },
});
out.sentMessage = await mailpit.getMessageSummary(out.sent.ID);
out.chaosBefore = await mailpit.getChaosTriggers();
out.chaosSet = await mailpit.setChaosTriggers({ Recipient: { ErrorCode: 550, Probability: 100 } });
process.stdout.write(JSON.stringify(out));
