// Takes the screenshots in docs/screenshots/ of a shopper's walk, on a laptop and on a phone.
// Usage: node end2end/screenshots.js [BASE_URL]   (a scanpay server must be running)
const { chromium } = require("playwright-core");
const path = require("path");
const BASE = process.argv[2] || "http://127.0.0.1:3400";
const OUT = path.join(__dirname, "..", "docs", "screenshots");

async function walk(browser, name, viewport) {
  const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  await page.goto(BASE + "/");
  await page.locator("body[data-hydrated]").waitFor();
  await page.locator('[data-sku="TEA-OOLONG"] [data-testid=inc]').click();
  await page.locator('[data-sku="BUN-RED"] [data-testid=inc]').click();
  await page.locator('[data-sku="BUN-RED"] [data-testid=inc]').click();
  await page.screenshot({ path: `${OUT}/${name}-1-catalogue.png` });
  await page.getByTestId("place-order").click();
  await page.getByTestId("qr").waitFor();
  await page.screenshot({ path: `${OUT}/${name}-2-checkout.png`, fullPage: true });
  const phone = await ctx.newPage();
  await phone.setViewportSize({ width: 390, height: 700 });
  await phone.goto(BASE + (await page.getByTestId("sandbox-scan").getAttribute("href")));
  await phone.screenshot({ path: `${OUT}/${name}-3-phone.png` });
  await phone.getByRole("button", { name: /^Pay/ }).click();
  await page.getByTestId("paid").waitFor({ timeout: 15000 });
  await page.screenshot({ path: `${OUT}/${name}-4-paid.png`, fullPage: true });
  await ctx.close();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  await walk(browser, "laptop", { width: 1280, height: 820 });
  await walk(browser, "phone", { width: 390, height: 844 });
  await browser.close();
})();
