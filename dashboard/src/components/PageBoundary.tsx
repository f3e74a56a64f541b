import { Component, type ErrorInfo, type ReactNode } from 'react';

/**
 * Catches what a page throws while rendering: the page says so and offers to try again, and the
 * rest of the app (header, navigation, the kiosk's other views) stays up. `resetKey` (the route)
 * clears it when the user goes elsewhere.
 */
export class PageBoundary extends Component<{ resetKey: string; children: ReactNode }, { error: Error | null; key: string }> {
  state: { error: Error | null; key: string } = { error: null, key: this.props.resetKey };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  static getDerivedStateFromProps(props: { resetKey: string }, state: { error: Error | null; key: string }) {
    return props.resetKey !== state.key ? { error: null, key: props.resetKey } : null;
  }

  componentDidCatch(error: Error, info: ErrorInfo) {
    console.error('page failed', error, info.componentStack);
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <div className="page" role="alert" data-testid="page-failed">
        <h2>This page could not be shown</h2>
        <p className="muted">{this.state.error.message}</p>
        <button type="button" onClick={() => this.setState({ error: null })}>
          Try again
        </button>
      </div>
    );
  }
}
