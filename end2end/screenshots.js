// Takes the screenshots in docs/screenshots/ of a shopper's walk, on a laptop and on a phone.
// Usage: node end2end/screenshots.js [BASE_URL] [FAST_BASE_URL]   (scanpay servers must be running;
// the second, with short close floors, is used for the cancelled-order page)
const { chromium } = require("playwright-core");
const path = require("path");
const BASE = process.argv[2] || "http://127.0.0.1:3400";
const FAST = process.argv[3];
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

async function cancelled(browser, viewport) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  await page.goto(FAST + "/");
  await page.locator("body[data-hydrated]").waitFor();
  await page.locator('[data-sku="MUG-CELADON"] [data-testid=inc]').click();
  await page.getByTestId("place-order").click();
  await page.getByTestId("cancel").waitFor();
  await page.getByTestId("cancel").click();
  await page.getByText("Cancelling").waitFor();
  await page.screenshot({ path: `${OUT}/phone-5-cancelling.png`, fullPage: true });
  await page.getByTestId("failed").waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${OUT}/phone-6-cancelled.png`, fullPage: true });
  await ctx.close();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  await walk(browser, "laptop", { width: 1280, height: 820 });
  await walk(browser, "phone", { width: 390, height: 844 });
  if (FAST) await cancelled(browser, { width: 390, height: 844 });
  await browser.close();
})();
