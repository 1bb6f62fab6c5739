// Mailpit's own API client library, unchanged, asking mailroom for the checks of a message and
// setting its tags. Run by tests/web/test_mailpit_client.py as `node checks.mjs BASE_URL ID`;
// prints one JSON object of what the client got, which the test checks.
import { MailpitClient } from "mailpit-api";

const [baseURL, id] = process.argv.slice(2);
const mailpit = new MailpitClient(baseURL);

const out = {};
out.htmlCheck = await mailpit.htmlCheck(id);
out.linkCheck = await mailpit.linkCheck(id);
out.linkCheckFollowed = await mailpit.linkCheck(id, true);
out.spamAssassinCheck = await mailpit.spamAssassinCheck(id);
out.setTags = await mailpit.setTags({ IDs: [id], Tags: ["Newsletter", "checked"] });
out.tags = await mailpit.getTags();
out.tagged = await mailpit.searchMessages({ query: "tag:newsletter" });
out.renamed = await mailpit.renameTag("checked", "reviewed");
out.deleted = await mailpit.deleteTag("Newsletter");
out.tagsAfter = await mailpit.getTags();
out.message = await mailpit.getMessageSummary(id);
out.cleared = await mailpit.setTags({ IDs: [id] });
out.tagsCleared = await mailpit.getTags();
process.stdout.write(JSON.stringify(out));
