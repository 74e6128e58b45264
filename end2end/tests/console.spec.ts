import { createHash, randomBytes } from "node:crypto";
import { Page } from "@playwright/test";
import { test, expect, openShop, add, placeOrder, noSeriousViolations } from "./fixtures";
import { BASE } from "../playwright.config";

// The operator serve.sh makes with `scanpay operator add` before the server starts.
const OPERATOR = { name: "e2e-otto", password: "e2e operator password" };
const OPS = { authorization: "Bearer e2e-ops-token-for-the-refund-test" };
// The sandbox's throwaway merchant (Leptos.toml): what a notify from WeChat is signed with.
const MERCHANT = { appid: "wx5a4d1ba6b7c8e9f0", mch_id: "1900000109", key: "sandbox0api0key0not0a0secret0000" };

async function signIn(page: Page, errors: string[], next = "/ops/orders") {
  await page.goto(next);
  await expect(page).toHaveURL(/\/ops\/login\?next=/);
  await noSeriousViolations(page, "the sign-in page");
  await page.getByLabel("Name").fill(OPERATOR.name);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("login-error")).toBeVisible();
  // The wrong password's 401 is the one error the browser may log here.
  errors.splice(0, errors.length, ...errors.filter((e) => !/\/ops\/login: Failed to load resource: .* 401/.test(e)));
  await expect(page.getByLabel("Name")).toHaveValue(OPERATOR.name);
  await page.getByLabel("Password").fill(OPERATOR.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(new RegExp(`${next.replace(/[?]/g, "\\?")}$`));
}

/** A shopper's order, paid on the sandbox phone. */
async function paidOrder(page: Page, sku: string): Promise<string> {
  await openShop(page);
  await add(page, sku, 1);
  const orderNo = await placeOrder(page);
  const phone = await page.context().newPage();
  await phone.goto((await page.getByTestId("sandbox-scan").getAttribute("href"))!);
  await phone.getByRole("button", { name: /^Pay/ }).click();
  await expect(page).toHaveURL(new RegExp(`/orders/${orderNo}/paid$`), { timeout: 15_000 });
  await phone.close();
  return orderNo;
}

test("an operator finds a paid order by its WeChat transaction id, refunds part of it, and sees it in the timeline and the audit log", async ({ page, context, request, errors }) => {
  const orderNo = await paidOrder(page, "TEA-OOLONG");
  const tx: string = (await (await request.get(`/ops/orders/${orderNo}`, { headers: OPS })).json()).transaction_id;
  expect(tx).toMatch(/^\d{28}$/);

  const ops = await context.newPage();
  await signIn(ops, errors);
  await noSeriousViolations(ops, "the orders list");
  await ops.getByRole("searchbox", { name: /transaction id/ }).fill(tx);
  await ops.getByRole("searchbox", { name: /transaction id/ }).press("Enter");
  await expect(ops).toHaveURL(new RegExp(`/ops/orders/${orderNo}$`));
  await expect(ops.getByTestId("ops-order-status")).toHaveText("Paid");
  await noSeriousViolations(ops, "an order");

  await ops.getByLabel("Amount (¥)").fill("12.00");
  await ops.getByLabel(/^Reason/).fill("broken lid");
  await ops.getByTestId("ops-refund-submit").click();
  await expect(ops.getByTestId("ops-done")).toContainText("Refund requested");
  await expect(ops.getByTestId("ops-refund-row")).toHaveCount(1);
  await expect(ops.getByTestId("ops-refund-row")).toContainText("¥12.00");
  await expect(ops.getByTestId("ops-timeline").locator('[data-kind="refund_requested"]')).toHaveCount(1);
  // WeChat settles it; the page shows it on the next look.
  await expect.poll(async () => { await ops.reload(); return ops.getByTestId("ops-refund-row").textContent(); }, { timeout: 15_000 }).toContain("success");

  await ops.getByRole("link", { name: "Audit log" }).click();
  await expect(ops.getByTestId("ops-audit-row").filter({ hasText: "broken lid" })).toHaveCount(1);
  await expect(ops.locator('[data-action="sign_in_failed"]').first()).toBeVisible();
  await noSeriousViolations(ops, "the audit log");
  await ops.getByRole("link", { name: "Overview" }).click();
  await expect(ops.getByTestId("ops-chart")).toBeVisible();
  await noSeriousViolations(ops, "the overview");
  await ops.getByRole("link", { name: "Reconciliation", exact: true }).click();
  await expect(ops.getByRole("heading", { name: "Reconciliation", level: 1 })).toBeVisible();
  await noSeriousViolations(ops, "the reconciliation days");
  await ops.getByTestId("ops-me").click();
  await expect(ops.getByTestId("twofa-start")).toBeVisible();
  await noSeriousViolations(ops, "the second-factor page");
  await ops.getByRole("link", { name: "Orders" }).click();

  // The same console in Chinese.
  await ops.getByTestId("ops-lang").click();
  await expect(ops.getByRole("heading", { name: "订单" })).toBeVisible();
  await noSeriousViolations(ops, "the orders list in Chinese");
  await ops.goto(`/ops/orders/${orderNo}`);
  await expect(ops.getByTestId("ops-order-status")).toHaveText("已支付");
  await ops.goto("/ops");
  await expect(ops.getByRole("heading", { name: "概览" })).toBeVisible();
  await ops.getByTestId("ops-lang").click();
  await expect(ops.getByRole("heading", { name: "Overview" })).toBeVisible();
  await ops.getByTestId("ops-logout").click();
  await expect(ops).toHaveURL(/\/ops\/login$/);
});

/** A pay notify as WeChat signs it (MD5 with the merchant's key). */
function notifyXml(fields: Record<string, string>): string {
  const all: Record<string, string> = { appid: MERCHANT.appid, mch_id: MERCHANT.mch_id, nonce_str: randomBytes(8).toString("hex"), ...fields };
  const plain = Object.keys(all).sort().map((k) => `${k}=${all[k]}`).join("&") + `&key=${MERCHANT.key}`;
  const sign = createHash("md5").update(plain, "utf8").digest("hex").toUpperCase();
  return "<xml>" + Object.entries({ ...all, sign }).map(([k, v]) => `<${k}><![CDATA[${v}]]></${k}>`).join("") + "</xml>";
}

test("an operator resolves an anomaly (a payment of the wrong amount) with a reason, by keyboard", async ({ page, context, request, errors }) => {
  await openShop(page);
  await add(page, "BUN-RED", 1);
  const orderNo = await placeOrder(page);
  const tx = "4200" + String(Date.now()).padEnd(24, "7");
  const now = new Date(Date.now() + 8 * 3600_000).toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const sent = await request.post("/wxpay/notify", {
    headers: { "content-type": "text/xml" },
    data: notifyXml({ return_code: "SUCCESS", result_code: "SUCCESS", out_trade_no: orderNo, transaction_id: tx, total_fee: "1", time_end: now, trade_type: "NATIVE", openid: "o-e2e" }),
  });
  expect(sent.status()).toBe(200);
  const ops = await context.newPage();
  await signIn(ops, errors, "/ops/anomalies");
  const card = ops.locator(`[data-testid="ops-anomaly"]`).filter({ hasText: tx });
  await expect(card).toHaveCount(1, { timeout: 15_000 });
  await noSeriousViolations(ops, "the anomalies");
  // By keyboard: into the reason field, type, Enter submits.
  await card.getByLabel("Why it is resolved").focus();
  await ops.keyboard.type("shopper paid 0.01 by mistake; refunded by phone");
  await ops.keyboard.press("Enter");
  await expect(ops.getByTestId("ops-done")).toHaveText("Anomaly resolved.");
  await expect(card.getByTestId("ops-resolution")).toContainText("e2e-otto: shopper paid 0.01 by mistake");
  await expect(card.getByTestId("ops-resolve")).toHaveCount(0);
  await ops.goto("/ops/audit");
  await expect(ops.locator('[data-action="resolve"]').filter({ hasText: "shopper paid 0.01" })).toHaveCount(1);
  // A cross-site form is refused, even signed in.
  const forged = await ops.request.post(`${BASE}/ops/orders/${orderNo}/note`, { headers: { origin: "https://evil.example" }, form: { text: "forged" } });
  expect(forged.status()).toBe(403);
});

test("the same walk in Chinese: sign in (登录), find an order by its number, refund part of it, see it in the timeline and the audit log", async ({ page, context }) => {
  const orderNo = await paidOrder(page, "BUN-RED");
  await context.addCookies([{ name: "lang", value: "zh-CN", url: BASE }]);
  const ops = await context.newPage();
  await ops.goto("/ops/orders");
  await expect(ops).toHaveURL(/\/ops\/login\?next=/);
  await ops.getByLabel("用户名").fill(OPERATOR.name);
  await ops.getByLabel("密码", { exact: true }).fill(OPERATOR.password);
  await ops.getByRole("button", { name: "登录" }).click();
  await expect(ops).toHaveURL(/\/ops\/orders$/);
  await ops.getByRole("searchbox", { name: /订单号/ }).fill(orderNo);
  await ops.getByRole("searchbox", { name: /订单号/ }).press("Enter");
  await expect(ops).toHaveURL(new RegExp(`/ops/orders/${orderNo}$`));
  await expect(ops.getByTestId("ops-order-status")).toHaveText("已支付");
  await ops.getByLabel("退款金额（元）").fill("5.00");
  await ops.getByLabel(/^退款原因/).fill("少发了一个");
  await ops.getByTestId("ops-refund-submit").click();
  await expect(ops.getByTestId("ops-done")).toContainText("已发起退款");
  await expect(ops.getByTestId("ops-refund-row")).toContainText("¥5.00");
  await expect(ops.getByTestId("ops-timeline").locator('[data-kind="refund_requested"]')).toHaveCount(1);
  await noSeriousViolations(ops, "an order in Chinese");
  await ops.getByRole("link", { name: "操作日志" }).click();
  await expect(ops.getByTestId("ops-audit-row").filter({ hasText: "少发了一个" })).toHaveCount(1);
  await noSeriousViolations(ops, "the audit log in Chinese");
  await ops.getByRole("link", { name: "异常" }).click();
  await noSeriousViolations(ops, "the anomalies in Chinese");
  await ops.getByRole("link", { name: "对账", exact: true }).click();
  await noSeriousViolations(ops, "the reconciliation days in Chinese");
  await ops.getByRole("link", { name: "概览" }).click();
  await noSeriousViolations(ops, "the overview in Chinese");
});
