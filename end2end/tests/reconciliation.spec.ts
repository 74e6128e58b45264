import { Page } from "@playwright/test";
import { test, expect, openShop, add, placeOrder, noSeriousViolations } from "./fixtures";
import { BASE } from "../playwright.config";

// The operator end2end/serve.sh makes; its server's sandbox bill for today is ready at once.
const OPERATOR = { name: "e2e-otto", password: "e2e operator password" };
const SHOTS = "../docs/screenshots";

/** Today in Beijing, yyyy-mm-dd: the bill date the orders paid now belong to. */
function beijingToday(): string {
  return new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
}

/** A shopper's order, paid on the sandbox phone; WeChat's bill will show it one fen more. */
async function paidOrderBilledWrong(page: Page): Promise<string> {
  await openShop(page);
  await add(page, "TEA-OOLONG", 1);
  const orderNo = await placeOrder(page);
  const phone = await page.context().newPage();
  await phone.goto((await page.getByTestId("sandbox-scan").getAttribute("href"))!);
  await phone.getByRole("button", { name: /^Pay/ }).click();
  await expect(page).toHaveURL(new RegExp(`/orders/${orderNo}/paid$`), { timeout: 15_000 });
  await phone.close();
  const knob = await page.request.post("/sandbox/admin/faults", { form: { spec: "bill=amount_off", out_trade_no: orderNo } });
  expect(knob.status()).toBe(200);
  return orderNo;
}

/** Reloads the day until its run has finished and, after "Run again" (whose page first shows
 *  the earlier result, also done), until the run has seen `order`. */
async function untilDone(ops: Page, order?: string) {
  await expect
    .poll(async () => {
      await ops.reload();
      const status = await ops.getByTestId("recon-status").first().getAttribute("data-status");
      const seen = order === undefined || (await ops.getByTestId("recon-line").filter({ hasText: order }).count()) > 0;
      return status === "done" && seen;
    }, { timeout: 20_000 })
    .toBe(true);
}

test("an operator reconciles today, finds the payment WeChat billed differently and resolves it with a reason — in English, then in Chinese", async ({ page, context }) => {
  const day = beijingToday();
  const first = await paidOrderBilledWrong(page);

  const ops = await context.newPage();
  await ops.setViewportSize({ width: 1280, height: 820 });
  await ops.goto("/ops/reconciliation");
  await expect(ops).toHaveURL(/\/ops\/login\?next=/);
  await ops.getByLabel("Name").fill(OPERATOR.name);
  await ops.getByLabel("Password").fill(OPERATOR.password);
  await ops.getByRole("button", { name: "Sign in" }).click();
  await expect(ops).toHaveURL(/\/ops\/reconciliation$/);
  await expect(ops.getByRole("heading", { name: "Reconciliation", level: 1 })).toBeVisible();
  await noSeriousViolations(ops, "the reconciliation days");

  // "Reconcile a day": today; it runs in the background and the day's page shows it.
  await ops.getByLabel("Day (Beijing date)").fill(day);
  await ops.getByTestId("recon-run").click();
  await expect(ops).toHaveURL(new RegExp(`/ops/reconciliation/${day}\\?done=recon_started$`));
  await expect(ops.getByTestId("ops-done")).toContainText("Reconciliation started");
  await untilDone(ops);

  const line = ops.getByTestId("recon-line").filter({ hasText: first });
  await expect(line).toHaveCount(1);
  await expect(line).toHaveAttribute("data-class", "amount_differs");
  await expect(line).toContainText("Amount differs");
  await expect(line.getByRole("link", { name: first })).toHaveAttribute("href", `/ops/orders/${first}`);
  await expect(ops.getByTestId("recon-totals").locator('[data-class="amount_differs"] td').first()).not.toHaveText("0");
  await noSeriousViolations(ops, "a reconciled day");
  await ops.screenshot({ path: `${SHOTS}/console-reconciliation-en.png`, fullPage: true });

  // Resolve it, with a reason, by keyboard.
  await line.getByLabel("Why it is resolved").focus();
  await ops.keyboard.type("WeChat's bill shows 1 fen more; confirmed with WeChat support");
  await ops.keyboard.press("Enter");
  await expect(ops.getByTestId("ops-done")).toHaveText("Difference resolved.");
  await expect(line.getByTestId("recon-resolution")).toContainText(`Resolved by ${OPERATOR.name}`);
  await expect(line.getByTestId("recon-resolution")).toContainText("confirmed with WeChat support");
  await expect(line.getByTestId("recon-resolve")).toHaveCount(0);

  // The days: this one's money, WeChat's beside ours (a fen apart), flagged.
  await ops.goto("/ops/reconciliation");
  const paid = ops.getByTestId("recon-day").filter({ hasText: day }).getByTestId("recon-day-paid");
  await expect(paid).toHaveText(/^¥\d+\.\d\d \/ ¥\d+\.\d\d$/);
  await expect(paid).toHaveClass(/\bbad\b/);
  await noSeriousViolations(ops, "the reconciliation days with a day run");
  await ops.screenshot({ path: `${SHOTS}/console-reconciliation-days-en.png`, fullPage: true });
  await ops.goto(`/ops/reconciliation/${day}`);

  // The CSV has the line with its ids as written.
  const csv = await ops.request.get(`${BASE}/ops/reconciliation/${day}.csv`);
  expect(csv.status()).toBe(200);
  expect(await csv.text()).toContain(`"${first}"`);

  // The audit log has it; the order's page links back to the day.
  await ops.getByRole("link", { name: "Audit log" }).click();
  await expect(ops.getByTestId("ops-audit-row").filter({ hasText: "confirmed with WeChat support" })).toHaveCount(1);
  await ops.goto(`/ops/orders/${first}`);
  await expect(ops.getByTestId("ops-order-recon").getByRole("link")).toHaveAttribute("href", `/ops/reconciliation/${day}`);

  // The same in Chinese: another payment billed wrong, "Run again", resolve it.
  const second = await paidOrderBilledWrong(page);
  await context.addCookies([{ name: "lang", value: "zh-CN", url: BASE }]);
  await ops.goto(`/ops/reconciliation/${day}`);
  await expect(ops.getByRole("heading", { name: `${day} 对账` })).toBeVisible();
  await ops.getByRole("button", { name: "重新对账" }).click();
  await expect(ops.getByTestId("ops-done")).toContainText("已在后台开始对账");
  await untilDone(ops, second);
  const again = ops.getByTestId("recon-line").filter({ hasText: second });
  await expect(again).toContainText("金额不一致");
  // The first stays resolved through the re-run.
  await expect(ops.getByTestId("recon-line").filter({ hasText: first }).getByTestId("recon-resolution")).toContainText(OPERATOR.name);
  await noSeriousViolations(ops, "a reconciled day in Chinese");
  await ops.screenshot({ path: `${SHOTS}/console-reconciliation-zh-CN.png`, fullPage: true });
  await again.getByLabel("处理说明").fill("微信账单多记 1 分，已与微信核实");
  await again.getByRole("button", { name: "标记已处理" }).click();
  await expect(ops.getByTestId("ops-done")).toHaveText("差异已标记为已处理。");
  await expect(again.getByTestId("recon-resolution")).toContainText("微信账单多记 1 分");
  await ops.getByRole("link", { name: "对账", exact: true }).click();
  await expect(ops.getByTestId("recon-day").filter({ hasText: day })).toBeVisible();
  await noSeriousViolations(ops, "the reconciliation days in Chinese");
  await ops.screenshot({ path: `${SHOTS}/console-reconciliation-days-zh-CN.png`, fullPage: true });
});
