// A teacher's key: no admin screens, only its own department's classes; another
// department's class cannot be opened.
import { expect, test } from '@playwright/test';
import { adminKey, apiCall, base, screenshot, signIn } from './app';

interface Created {
  id: string;
}

test('a teacher sees only their department and no admin screens', async ({ page }) => {
  const admin = adminKey();
  const own = await apiCall<Created>(admin, 'POST', '/classes', { name: 'MECH 1B', department: 'MECH' });
  const other = await apiCall<Created>(admin, 'POST', '/classes', { name: 'ECE 2B', department: 'ECE' });
  const teacher = await apiCall<{ id: string; key: string }>(admin, 'POST', '/keys', {
    role: 'teacher',
    name: 'Ms. Iyer',
    department: 'MECH',
  });

  await signIn(page, teacher.key);
  await expect(page.getByTestId('who')).toContainText('Teacher · MECH');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Attendance' })).toBeVisible();
  await expect(nav.getByRole('link', { name: 'Settings' })).toHaveCount(0);

  await nav.getByRole('link', { name: 'Classes' }).click();
  await expect(page.getByRole('link', { name: 'MECH 1B' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'ECE 2B' })).toHaveCount(0);
  await expect(page.getByRole('form', { name: 'New class' })).toHaveCount(0);
  // The home screen offers only the teacher's classes.
  await nav.getByRole('link', { name: 'Attendance' }).click();
  const classes = page.getByLabel('Class', { exact: true });
  // The options come with the class list: wait for it before reading them all at once
  // (allTextContents does not wait, and read an empty list on a slow run).
  await expect(classes.locator('option', { hasText: 'MECH 1B (MECH)' })).toHaveCount(1);
  const options = await classes.locator('option').allTextContents();
  expect(options).toContain('MECH 1B (MECH)');
  expect(options.join()).not.toContain('ECE');
  await screenshot(page, '11-teacher-attendance');

  // Typed addresses do not get around it.
  await page.goto(`${base()}/#/classes/${other.id}`);
  await expect(page.getByRole('alert')).toContainText('not found');
  await screenshot(page, '12-teacher-other-department');
  await page.goto(`${base()}/#/analytics?class=${other.id}`);
  await expect(page.getByRole('alert')).toContainText('not found');
  await page.goto(`${base()}/#/settings`);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await page.goto(`${base()}/#/classes/${own.id}`);
  await expect(page.getByRole('heading', { name: 'MECH 1B' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Delete class' })).toHaveCount(0);

  // A key revoked while in use sends the page back to sign-in.
  await apiCall(admin, 'DELETE', `/keys/${teacher.id}`);
  await page.getByRole('link', { name: 'Classes' }).click();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
});
