/**
 * HTTP-date (RFC 9110 5.6.7), parsed exactly: the IMF-fixdate and the two obsolete formats
 * (rfc850-date and asctime-date), case-sensitive as the grammar is. Anything else is not a
 * date: `Date.parse` would read `UTC` zones, missing commas or one-digit hours, and RFC 9111
 * 5.3 wants an invalid `Expires` read as a time in the past, not guessed at.
 * @module
 */

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].join("|");
const LONG_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTH = MONTHS.join("|");
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";

const IMF_FIXDATE = new RegExp(`^(?:${DAYS}), (\\d{2}) (${MONTH}) (\\d{4}) ${TIME} GMT$`);
const RFC850 = new RegExp(`^(?:${LONG_DAYS.join("|")}), (\\d{2})-(${MONTH})-(\\d{2}) ${TIME} GMT$`);
const ASCTIME = new RegExp(`^(?:${DAYS}) (${MONTH}) ( \\d|\\d{2}) ${TIME} (\\d{4})$`);

function at(
  year: number,
  month: string,
  day: string,
  hour: string,
  minute: string,
  second: string,
): number | undefined {
  const m = MONTHS.indexOf(month);
  const d = Number(day);
  const [h, min, s] = [Number(hour), Number(minute), Number(second)];
  if (d < 1 || h > 23 || min > 59 || s > 60) return undefined;
  const t = Date.UTC(year, m, d, h, min, Math.min(s, 59));
  // 31 Feb and the like roll over into the next month: not a date.
  if (new Date(t).getUTCDate() !== d) return undefined;
  return t;
}

/**
 * An HTTP-date in ms since the epoch, or `undefined` when the text is not one. A two-digit
 * rfc850 year that would be more than 50 years after `now` is the most recent past year with
 * those digits (RFC 9110 5.6.7).
 */
export function parseHttpDate(text: string | null, now: number = Date.now()): number | undefined {
  if (text === null) return undefined;
  const value = text.trim();
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) {
    const [, day, month, year, h, min, s] = m as unknown as string[];
    return at(
      Number(year),
      month as string,
      day as string,
      h as string,
      min as string,
      s as string,
    );
  }
  m = RFC850.exec(value);
  if (m !== null) {
    const [, day, month, yy, h, min, s] = m as unknown as string[];
    const current = new Date(now).getUTCFullYear();
    let year = current - (current % 100) + Number(yy);
    if (year > current + 50) year -= 100;
    return at(year, month as string, day as string, h as string, min as string, s as string);
  }
  m = ASCTIME.exec(value);
  if (m !== null) {
    const [, month, day, h, min, s, year] = m as unknown as string[];
    return at(
      Number(year),
      month as string,
      (day as string).trim(),
      h as string,
      min as string,
      s as string,
    );
  }
  return undefined;
}
