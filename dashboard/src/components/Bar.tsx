/** A horizontal gauge with a threshold mark. */
export function Bar({ fill, mark, bad, label, testid }: { fill: number; mark: number; bad: boolean; label: string; testid?: string }) {
  return (
    <div className="bar" title={label} aria-label={label} data-testid={testid}>
      <div className={`bar-fill${bad ? ' bad' : ''}`} style={{ width: `${(fill * 100).toFixed(1)}%` }} />
      <div className="bar-mark" style={{ left: `${(mark * 100).toFixed(1)}%` }} />
    </div>
  );
}
