import { defineConfig, devices } from "@playwright/test";

// One scanpay server per run, on its own port and a fresh database. E2E_PROFILE picks the
// build (debug | release); the release run catches WASM that breaks at hydration. E2E_PORT
// defaults to 3400; scripts/test.sh picks a free one per run (and E2E_RUN_ID for serve.sh's names).
const PORT = Number(process.env.E2E_PORT ?? 3400);
const PROFILE = process.env.E2E_PROFILE ?? "debug";
export const BASE = `http://127.0.0.1:${PORT}`;
// A second server with short deadlines, for the lifecycle tests (tests/lifecycle.spec.ts).
export const FAST_PORT = PORT + 1;

export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  use: { baseURL: BASE, trace: "retain-on-failure" },
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
          args: [
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
          ],
        },
      },
    },
  ],
  webServer: [
    {
      command: `bash ./serve.sh ${PROFILE}`,
      url: `${BASE}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
      env: { E2E_PORT: String(PORT), SCANPAY_OPS_TOKEN: "e2e-ops-token-for-the-refund-test" },
    },
    {
      command: `bash ./serve.sh ${PROFILE}`,
      url: `http://127.0.0.1:${FAST_PORT}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
      env: {
        E2E_PORT: String(FAST_PORT),
        SCANPAY_ORDER_TTL: "8s",
        SCANPAY_SWEEP_INTERVAL: "500ms",
        SCANPAY_WXPAY_CLOSE_FLOOR: "2s",
        SCANPAY_SANDBOX_CLOSE_FLOOR: "2s",
        // WeChat's 5-minute minimum for time_expire, shortened for 8-second orders.
        SCANPAY_SANDBOX_MIN_EXPIRE: "1s",
      },
    },
  ],
});
