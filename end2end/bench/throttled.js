// Benchmark: the checkout on a slow mobile network (Chrome DevTools Protocol: 1.6 Mbit/s down,
// 750 kbit/s up, 150 ms round trip, the cache empty): time from navigation to the QR code being
// visible (the server render) and to the page being hydrated (the WASM loaded and running).
// Usage: node end2end/bench/throttled.js [BASE_URL] [RUNS]   (scripts/bench.sh throttled).
const { chromium } = require("playwright-core");
const BASE = process.argv[2] || "http://127.0.0.1:3000";
const RUNS = Number(process.argv[3] || 5);

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const qr = [], hydrated = [], bytes = [];
  for (let i = 0; i < RUNS; i++) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    // Place an order unthrottled; then open its checkout as a fresh visit on the slow network.
    await page.goto(BASE + "/");
    await page.locator("body[data-hydrated]").waitFor();
    await page.locator('[data-sku="PIN-PANDA"] [data-testid=inc]').click();
    await page.getByTestId("place-order").click();
    await page.waitForURL(/\/checkout\/SP\w+$/);
    await page.getByTestId("qr").waitFor();
    const url = page.url();
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.clearBrowserCache");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: 150,
      downloadThroughput: (1.6 * 1024 * 1024) / 8,
      uploadThroughput: (750 * 1024) / 8,
    });
    let received = 0;
    cdp.on("Network.loadingFinished", (e) => (received += e.encodedDataLength));
    const t0 = Date.now();
    await page.goto(url, { waitUntil: "commit" });
    await page.getByTestId("qr").locator("svg").waitFor({ state: "visible", timeout: 60000 });
    qr.push(Date.now() - t0);
    await page.locator("body[data-hydrated]").waitFor({ state: "attached", timeout: 60000 });
    hydrated.push(Date.now() - t0);
    bytes.push(received);
    await ctx.close();
  }
  await browser.close();
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`checkout at 1.6 Mbit/s, 150 ms RTT, empty cache, ${RUNS} runs (median): QR visible ${med(qr)} ms, hydrated ${med(hydrated)} ms, ${(med(bytes) / 1024).toFixed(0)} KB over the wire`);
  console.log(`all runs: QR ${qr.join(", ")} ms; hydrated ${hydrated.join(", ")} ms`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
