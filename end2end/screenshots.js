// Takes the screenshots in docs/screenshots/ of a shopper's walk, in English and in Simplified
// Chinese, on a laptop and on a phone (touch, 390 px; and the narrowest, 320 px).
// Usage: node end2end/screenshots.js [BASE_URL] [FAST_BASE_URL]   (scanpay servers must be running;
// the second, with short close floors, is used for the cancelled-order page). Chinese text needs
// a CJK font on the machine (Debian: fonts-wqy-microhei).
const { chromium } = require("playwright-core");
const path = require("path");
const BASE = process.argv[2] || "http://127.0.0.1:3400";
const FAST = process.argv[3];
const OUT = path.join(__dirname, "..", "docs", "screenshots");

const LAPTOP = { viewport: { width: 1280, height: 820 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const NARROW = { viewport: { width: 320, height: 640 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };

async function walk(browser, name, device, locale) {
  const ctx = await browser.newContext({ ...device, locale });
  const page = await ctx.newPage();
  // A full-page capture drops Chromium's touch emulation for the moment it takes (so the phone
  // notice, shown on touch screens only, would vanish): phones are shot a screen at a time.
  const touch = !!device.hasTouch;
  const shot = (n, full = !touch) => page.screenshot({ path: `${OUT}/${locale}-${name}-${n}.png`, fullPage: full });
  await page.goto(BASE + "/");
  await page.locator("body[data-hydrated]").waitFor();
  await page.locator('[data-sku="TEA-OOLONG"] [data-testid=inc]').click();
  await page.locator('[data-sku="BUN-RED"] [data-testid=inc]').click();
  await page.locator('[data-sku="BUN-RED"] [data-testid=inc]').click();
  await shot("1-catalogue", false);
  await page.getByTestId("place-order").click();
  await page.getByTestId("qr").waitFor();
  await shot("2-checkout");
  if (touch) {
    await page.getByTestId("phone-notice").scrollIntoViewIfNeeded();
    await shot("2b-checkout-phone-notice");
  }
  const phone = await ctx.newPage();
  await phone.goto(BASE + (await page.getByTestId("sandbox-scan").getAttribute("href")));
  await phone.screenshot({ path: `${OUT}/${locale}-${name}-3-sandbox-phone.png` });
  await phone.locator("button.pay").click();
  await page.getByTestId("paid").waitFor({ timeout: 15000 });
  await shot("4-paid");
  await page.getByTestId("nav-orders").click();
  await page.getByTestId("order-line").first().waitFor();
  await shot("5-my-orders");
  await ctx.close();
}

async function cancelled(browser, device, locale) {
  const ctx = await browser.newContext({ ...device, locale });
  const page = await ctx.newPage();
  await page.goto(FAST + "/");
  await page.locator("body[data-hydrated]").waitFor();
  await page.locator('[data-sku="MUG-CELADON"] [data-testid=inc]').click();
  await page.getByTestId("place-order").click();
  await page.getByTestId("cancel").waitFor();
  await page.getByTestId("cancel").click();
  await page.getByTestId("failed").waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${OUT}/${locale}-phone-6-cancelled.png` });
  await ctx.close();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  for (const locale of ["en", "zh-CN"]) {
    await walk(browser, "laptop", LAPTOP, locale);
    await walk(browser, "phone", PHONE, locale);
    await walk(browser, "phone320", NARROW, locale);
    if (FAST) await cancelled(browser, PHONE, locale);
  }
  await browser.close();
})();
