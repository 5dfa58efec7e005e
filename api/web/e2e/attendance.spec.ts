// The core flow as an admin would do it in the browser: sign in, create a class,
// register the fixture people through the form, mark attendance from the group
// photos, read the result (names on the boxes and in the class list), correct one
// student and see it persist, export CSV; then the other screens.
import { readFileSync } from 'node:fs';
import { expect, test, type Page } from '@playwright/test';
import { adminKey, apiCall, base, expectNoSideScroll, fixture, GROUPS, PEOPLE, PRESENT, screenshot, signIn } from './app';

test.describe.configure({ mode: 'serial' });

let page: Page;
let sessionUrl: string;

test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
});

test.afterAll(async () => {
  await page.close();
});

test('a wrong key is refused with the API message; the admin key signs in', async () => {
  await page.goto(`${base()}/`);
  await screenshot(page, '01-sign-in');
  await page.getByLabel('API key').fill('att_not-a-real-key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('unknown or revoked API key');
  await signIn(page, adminKey());
  await expect(page.getByTestId('who')).toContainText('Admin');
  await expect(page.getByRole('link', { name: 'Settings' })).toBeVisible();
});

test('an admin creates a class', async () => {
  await page.getByRole('link', { name: 'Classes' }).click();
  const form = page.getByRole('form', { name: 'New class' });
  await form.getByLabel('Class name').fill('CSE 3A');
  await form.getByLabel('Department').fill('CSE');
  await form.getByLabel('Year').fill('3');
  await form.getByLabel('Section').fill('A');
  await form.getByRole('button', { name: 'Create class' }).click();
  await expect(page.getByRole('link', { name: 'CSE 3A' })).toBeVisible();
  await screenshot(page, '02-classes');
});

test('the fixture people are registered through the form, each photo judged', async () => {
  // Clicked again until the form shows: in some runs the list screen came back after
  // the click (a stray navigation, not yet understood), and the rest then filled it.
  await expect(async () => {
    await page.getByRole('link', { name: 'Students' }).click();
    await page.getByRole('link', { name: 'Register a student' }).click();
    await expect(page.getByLabel('Roll number')).toBeVisible({ timeout: 2_000 });
  }).toPass();
  await page.getByLabel('Class', { exact: true }).selectOption({ label: 'CSE 3A (CSE)' });
  for (const [i, person] of PEOPLE.entries()) {
    if (i > 0) {
      await page.getByRole('button', { name: 'Register another' }).click();
      // The class stays chosen for the next student.
      await expect(page.getByLabel('Class', { exact: true })).toHaveValue(/[0-9a-f-]{36}/);
    }
    await page.getByLabel('Roll number').fill(person.roll);
    await page.getByLabel('Name', { exact: true }).fill(person.name);
    await page.getByLabel('choose photos').setInputFiles(person.photos.map(fixture));
    await expect(page.getByRole('img', { name: /^Photo \d/ })).toHaveCount(person.photos.length);
    await page.getByLabel(/consented to the use of their face/).check();
    await page.getByLabel('Consent note (optional)').fill(`form ${person.roll}`);
    await page.getByRole('button', { name: 'Register' }).click();
    await expect(page.getByText('Registration complete')).toBeVisible({ timeout: 120_000 });
    const verdicts = page.getByTestId('verdict');
    await expect(verdicts).toHaveCount(person.photos.length);
    for (let n = 0; n < person.photos.length; n++) await expect(verdicts.nth(n)).toContainText('accepted');
    if (i === 0) await screenshot(page, '03-register-student');
  }
  await page.goto(`${base()}/#/students`);
  for (const p of PEOPLE) await expect(page.getByRole('link', { name: p.name })).toBeVisible();
  await expect(page.locator('tbody tr')).toHaveCount(PEOPLE.length);
  // The consent ticked in the form is on record, with its note.
  const listed = await apiCall<{ items: { id: string; roll_no: string }[] }>(adminKey(), 'GET', '/students?per_page=50');
  for (const p of PEOPLE) {
    const s = listed.items.find((i) => i.roll_no === p.roll);
    expect(s, p.roll).toBeDefined();
    const detail = await apiCall<{ consent?: { action: string; note?: string | null } | null }>(
      adminKey(),
      'GET',
      `/students/${s!.id}`,
    );
    expect(detail.consent?.action).toBe('given');
    expect(detail.consent?.note).toBe(`form ${p.roll}`);
  }
  await screenshot(page, '04-students');
});

test('attendance from the group photos names the right people on the boxes and in the list', async () => {
  // As above: clicked again until the attendance form shows.
  await expect(async () => {
    await page.getByRole('link', { name: 'Attendance' }).click();
    await expect(page.getByLabel('Subject')).toBeVisible({ timeout: 2_000 });
  }).toPass();
  await page.getByLabel('Class', { exact: true }).selectOption({ label: 'CSE 3A (CSE)' });
  await page.getByLabel('Subject').fill('DBMS');
  await page.getByLabel('choose photos').setInputFiles(GROUPS.map(fixture));
  await screenshot(page, '05-attendance-form');
  await page.getByRole('button', { name: 'Mark attendance' }).click();
  await expect(page).toHaveURL(/#\/sessions\/[0-9a-f-]{36}$/);
  sessionUrl = page.url();
  await expect(page.getByRole('heading', { name: 'CSE 3A · DBMS' })).toBeVisible();
  // Live progress, then the result.
  await expect(page.getByLabel('Summary')).toContainText(`${PRESENT.length} present`, { timeout: 180_000 });

  const boxes = page.getByTestId('face-box');
  const labels = await boxes.evaluateAll((els) => els.map((e) => e.getAttribute('data-label')));
  const named = labels.filter((l) => l !== 'unknown').sort();
  expect(named).toEqual([...PRESENT].sort());
  for (const name of PRESENT) await expect(page.locator('.face-label', { hasText: name })).toBeVisible();

  const records = page.getByTestId('record');
  await expect(records).toHaveCount(PEOPLE.length);
  for (const name of PRESENT) await expect(page.getByRole('switch', { name: `${name} present` })).toBeChecked();
  await expect(page.getByRole('switch', { name: 'Alex Lacamoire present' })).not.toBeChecked();
  await screenshot(page, '06-session-result');
});

test('a toggle is a correction that persists after reload', async () => {
  const kit = page.getByRole('switch', { name: 'Kit Harington present' });
  await kit.click();
  await expect(kit).not.toBeChecked();
  await expect(page.getByLabel('Summary')).toContainText(`${PRESENT.length - 1} present`);
  await page.reload();
  await expect(page.getByRole('switch', { name: 'Kit Harington present' })).not.toBeChecked();
  const row = page.getByTestId('record').filter({ hasText: 'Kit Harington' });
  await expect(row).toHaveAttribute('data-status', 'absent');
  await expect(row).toContainText('corrected');
  await expect(page.getByText(/Corrections \(1\)/)).toBeVisible();
});

test('the CSV export holds the corrected session', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  const csv = readFileSync((await download.path())!, 'utf8').replace(/^\uFEFF/, '');
  const lines = csv.trim().split(/\r?\n/);
  expect(lines[0]).toMatch(/^roll_no,name,status/);
  const row = (name: string) => lines.find((l) => l.includes(name)) ?? '';
  expect(row('Barack Obama')).toMatch(/^21CS001,Barack Obama,present,/);
  expect(row('Kit Harington')).toMatch(/^21CS004,Kit Harington,absent,.*manual/);
  expect(row('Alex Lacamoire')).toMatch(/^21CS003,Alex Lacamoire,absent,.*auto/);
  expect(lines).toHaveLength(PEOPLE.length + 1);
});

test('the result is readable on a 360 px phone', async () => {
  await page.setViewportSize({ width: 360, height: 780 });
  await page.goto(sessionUrl);
  await expect(page.getByTestId('record')).toHaveCount(PEOPLE.length);
  await expect(page.getByTestId('face-box').first()).toBeVisible();
  await expectNoSideScroll(page);
  await screenshot(page, '07-session-result-360px');
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('sessions, analytics and settings screens', async () => {
  await page.getByRole('link', { name: 'Sessions' }).click();
  await expect(page.getByRole('cell', { name: 'DBMS' })).toBeVisible();
  await screenshot(page, '08-sessions');
  // The history opens the detail view.
  await page.locator('tbody tr').first().getByRole('link').click();
  await expect(page).toHaveURL(sessionUrl);

  await page.getByRole('link', { name: 'Analytics' }).click();
  await page.getByLabel('Class', { exact: true }).selectOption({ label: 'CSE 3A (CSE)' });
  await expect(page.getByRole('img', { name: /Attendance percentage per student/ })).toBeVisible();
  await expect(page.getByTestId('threshold-line')).toHaveCount(1);
  const under = page.getByRole('list', { name: 'Students under the threshold' });
  await expect(under).toContainText('Kit Harington');
  await expect(under).toContainText('Alex Lacamoire');
  await expect(under).not.toContainText('Barack Obama');
  await screenshot(page, '09-analytics');

  await page.getByRole('link', { name: 'Settings' }).click();
  const hookForm = page.getByRole('form', { name: 'New webhook' });
  // A private address is refused by the API, and the page says why.
  await hookForm.getByLabel('Receiver URL').fill('http://127.0.0.1:9/hook');
  await hookForm.getByRole('button', { name: 'Add webhook' }).click();
  await expect(page.getByRole('alert').filter({ hasText: /private|loopback/i })).toBeVisible();
  const keyForm = page.getByRole('form', { name: 'New API key' });
  await keyForm.getByLabel('Role').selectOption('teacher');
  await keyForm.getByLabel('Key name').fill('Dr. Rao');
  await keyForm.getByLabel('Key department').fill('CSE');
  await keyForm.getByRole('button', { name: 'Create key' }).click();
  await expect(page.getByTestId('new-key')).toHaveText(/^att_/);
  await expect(page.getByRole('cell', { name: 'Dr. Rao', exact: true })).toBeVisible();
  await screenshot(page, '10-settings');
  // Revoking asks first; Cancel keeps the key.
  await page.getByRole('button', { name: 'Revoke Dr. Rao' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByRole('button', { name: 'Revoke Dr. Rao' })).toBeVisible();
  await page.getByRole('button', { name: 'Revoke Dr. Rao' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await expect(page.getByRole('row', { name: /Dr\. Rao/ })).toContainText('revoked');
});

test('an unknown face is named from the tray', async () => {
  await page.getByRole('link', { name: 'Attendance' }).click();
  await page.getByLabel('Class', { exact: true }).selectOption({ label: 'CSE 3A (CSE)' });
  await page.getByLabel('Subject').fill('Lab');
  await page.getByLabel('choose photos').setInputFiles([fixture('groups/six_people.jpg')]);
  await page.getByRole('button', { name: 'Mark attendance' }).click();
  // Nobody of the class is in this photo: six unknown faces.
  await expect(page.getByLabel('Summary')).toContainText('6 unknown faces', { timeout: 180_000 });
  await expect(page.getByLabel('Summary')).toContainText('0 present');
  await screenshot(page, '13-unknown-faces');
  const first = page.locator('.tray-face').first();
  await first.getByLabel(/Who is this/).selectOption({ label: 'Alex Lacamoire (21CS003)' });
  await expect(first.getByLabel("Add to this student's photos")).toBeVisible();
  await first.getByRole('button', { name: 'Assign' }).click();
  await expect(page.getByLabel('Summary')).toContainText('5 unknown faces');
  await expect(page.getByRole('switch', { name: 'Alex Lacamoire present' })).toBeChecked();
  await expect(page.locator('.face-label', { hasText: 'Alex Lacamoire' })).toBeVisible();
});
