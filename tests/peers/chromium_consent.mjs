// Headless Chromium (Debian's `chromium`, driven by npm puppeteer-core, pinned)
// plays the person at the built-in authorization server: it opens the
// authorization URL, screenshots the consent page, presses Continue, lets the
// identity provider sign it in, and reports where it was sent back to. Real
// browser rules apply: cookies (the gateway's `__Host-` cookie), CSP, the
// form's same-origin post.
//
// Usage: node chromium_consent.mjs <authorize-url> <redirect-prefix> [screenshot.png]
// Prints `REDIRECT <url>` once a navigation starts with <redirect-prefix>
// (the request is aborted: nothing listens there), exit 0; `ERROR <msg>`, exit 2.
import puppeteer from "puppeteer-core";

const [authorizeUrl, prefix, screenshot] = process.argv.slice(2);
if (!authorizeUrl || !prefix) {
  process.stderr.write("usage: node chromium_consent.mjs <authorize-url> <redirect-prefix> [screenshot.png]\n");
  process.exit(64);
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 760, height: 720, deviceScaleFactor: 1 });
  let redirect;
  const arrived = new Promise((resolve) => {
    page.on("request", (req) => {
      if (req.isInterceptResolutionHandled()) return;
      if (req.url().startsWith(prefix)) {
        redirect = req.url();
        req.abort().catch(() => {});
        resolve();
      } else {
        req.continue().catch(() => {});
      }
    });
  });
  await page.setRequestInterception(true);
  const response = await page.goto(authorizeUrl, { waitUntil: "load" });
  if (!response || response.status() !== 200) throw new Error(`consent page answered ${response?.status()}`);
  if (screenshot) await page.screenshot({ path: screenshot });
  const title = await page.title();
  process.stdout.write(`TITLE ${title}\n`);
  await Promise.all([
    page.click('button[value="allow"]'),
    Promise.race([arrived, new Promise((_, reject) => setTimeout(() => reject(new Error("no redirect back within 20 s")), 20000))]),
  ]);
  process.stdout.write(`REDIRECT ${redirect}\n`);
  await browser.close();
  process.exit(0);
} catch (e) {
  process.stdout.write(`ERROR ${String(e?.message || e).replace(/\s+/g, " ")}\n`);
  await browser.close();
  process.exit(2);
}
