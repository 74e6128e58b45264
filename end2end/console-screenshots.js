// Takes the console's screenshots in docs/screenshots/ (console-<page>-<lang>.png), in English
// and in Simplified Chinese, signed in as an operator who exists on the server.
// Usage: OPS_NAME=… OPS_PASSWORD=… node end2end/console-screenshots.js [BASE_URL] [ORDER_NO]
// (a paid, partly refunded order makes the order page worth a look).
const { chromium } = require("playwright-core");
const path = require("path");
const BASE = process.argv[2] || "http://127.0.0.1:3400";
const ORDER = process.argv[3];
const OUT = path.join(__dirname, "..", "docs", "screenshots");

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  for (const lang of ["en", "zh-CN"]) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    await ctx.addCookies([{ name: "lang", value: lang, url: BASE }]);
    const page = await ctx.newPage();
    await page.goto(BASE + "/ops/login");
    await page.screenshot({ path: `${OUT}/console-login-${lang}.png` });
    await page.fill("#login-name", process.env.OPS_NAME);
    await page.fill("#login-password", process.env.OPS_PASSWORD);
    await page.click("[data-testid=login-submit]");
    await page.waitForURL(/\/ops$/);
    const pages = [["overview", "/ops"], ["orders", "/ops/orders"], ["anomalies", "/ops/anomalies"], ["audit", "/ops/audit"]];
    if (ORDER) pages.push(["order", `/ops/orders/${ORDER}`]);
    for (const [name, p] of pages) {
      await page.goto(BASE + p);
      await page.screenshot({ path: `${OUT}/console-${name}-${lang}.png`, fullPage: true });
    }
    await ctx.close();
  }
  await browser.close();
})();
