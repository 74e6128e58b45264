// Benchmark: notify → success page in a real browser. For each of N orders (default 50) a shopper
// places the order in Debian's chromium and waits on the checkout; the sandbox then pays it (its
// notify goes to scanpay), and the time until the browser shows the success page is recorded.
// With 3-second polling the wait is the notify's hand-off plus up to one poll period.
// Usage: node end2end/bench/notify-to-success.js [BASE_URL] [N]   (a scanpay server with the
// sandbox must be running there; scripts/bench.sh notify-to-success starts one). Prints p50/p95.
const { chromium } = require("playwright-core");
const BASE = process.argv[2] || "http://127.0.0.1:3000";
const N = Number(process.argv[3] || 50);

function pct(sorted, p) {
  return sorted[Math.round((sorted.length - 1) * p)];
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const times = [];
  for (let i = 0; i < N; i++) {
    await page.goto(BASE + "/");
    await page.locator("body[data-hydrated]").waitFor();
    await page.locator('[data-sku="PIN-PANDA"] [data-testid=inc]').click();
    await page.getByTestId("place-order").click();
    await page.waitForURL(/\/checkout\/SP\w+$/);
    await page.locator("body[data-hydrated]").waitFor();
    await page.getByTestId("qr").waitFor();
    const id = (await page.getByTestId("order-no").textContent()).trim();
    // Land the payment at a random point of the poll cycle, as a real shopper would.
    await page.waitForTimeout(Math.random() * 3000);
    const t0 = Date.now();
    const r = await fetch(BASE + "/sandbox/admin/pay", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "out_trade_no=" + encodeURIComponent(id),
    });
    if (!r.ok) throw new Error("sandbox pay: " + r.status + " " + (await r.text()));
    await page.waitForURL(/\/paid$/, { timeout: 15000 });
    await page.getByTestId("paid").waitFor();
    times.push(Date.now() - t0);
  }
  await browser.close();
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(`notify → success page, ${N} orders, 3-second polling (ms): p50 ${pct(times, 0.5)}, p95 ${pct(times, 0.95)}, max ${times[times.length - 1]}, mean ${mean.toFixed(0)}`);
  console.log(`goal p95 ≤ 3500 ms: ${pct(times, 0.95) <= 3500 ? "met" : "NOT met"}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
