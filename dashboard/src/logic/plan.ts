// The crew's shifts as a person writes them: "MON-FRI 06:00-14:00; SUN 22:00-06:00".
import type { Day, Shift } from '../api/types';

export const DAYS: Day[] = ['MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT', 'SUN'];

const TIME = /^([01]\d|2[0-4]):([0-5]\d)$/;

/** Parses shifts written as `DAYS HH:MM-HH:MM` separated by `;` (days: `MON`, `MON-FRI`,
 *  `SAT,SUN`, or `DAILY`). Throws an Error naming the part it cannot read. */
export function parseShifts(text: string): Shift[] {
  const shifts: Shift[] = [];
  for (const raw of text.split(';')) {
    const part = raw.trim();
    if (!part) continue;
    const m = /^(\S+)\s+(\S+)-(\S+)$/.exec(part);
    if (!m) throw new Error(`"${part}": write it as DAYS HH:MM-HH:MM, e.g. MON-FRI 06:00-14:00`);
    const [, dayText, start, end] = m;
    for (const t of [start, end]) {
      if (!TIME.test(t) || (t.startsWith('24') && t !== '24:00')) throw new Error(`"${part}": ${t} is not a time HH:MM`);
    }
    if (start === '24:00') throw new Error(`"${part}": a shift starts before 24:00`);
    shifts.push({ days: parseDays(dayText.toUpperCase(), part), start, end });
  }
  return shifts;
}

function parseDays(text: string, part: string): Day[] {
  if (text === 'DAILY') return [...DAYS];
  const days = new Set<Day>();
  for (const item of text.split(',')) {
    const [a, b] = item.split('-');
    const from = DAYS.indexOf(a as Day);
    const to = b === undefined ? from : DAYS.indexOf(b as Day);
    if (from < 0 || to < 0) throw new Error(`"${part}": ${item} is not a day (MON … SUN, MON-FRI, DAILY)`);
    // MON-FRI, or across the week's end (FRI-MON).
    for (let i = from; ; i = (i + 1) % 7) {
      days.add(DAYS[i]);
      if (i === to) break;
    }
  }
  return DAYS.filter((d) => days.has(d));
}

/** The shifts written back as `parseShifts` reads them (runs of days joined: MON-FRI). */
export function formatShifts(shifts: Shift[]): string {
  return shifts
    .map((s) => {
      const idx = s.days.map((d) => DAYS.indexOf(d)).filter((i) => i >= 0).sort((a, b) => a - b);
      const runs: string[] = [];
      let i = 0;
      while (i < idx.length) {
        let j = i;
        while (j + 1 < idx.length && idx[j + 1] === idx[j] + 1) j++;
        runs.push(j - i >= 2 ? `${DAYS[idx[i]]}-${DAYS[idx[j]]}` : idx.slice(i, j + 1).map((k) => DAYS[k]).join(','));
        i = j + 1;
      }
      const days = idx.length === 7 ? 'DAILY' : runs.join(',');
      return `${days} ${s.start}-${s.end}`;
    })
    .join('; ');
}

/** `UTC+01:00` for 60. */
export function formatOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const m = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/** The planned share of a technician's free shift time (0 when none). */
export function utilisation(available: number, busy: number, planned: number): number {
  const free = available - busy;
  return free > 0 ? Math.min(1, planned / free) : 0;
}
