/**
 * The process-wide kill switch. Off stops every injection at once: the
 * fault stages check `enabled` per attempt, and every injected delay, hang
 * and throttle in flight listens to `releaseSignal`, which aborts when the
 * switch goes off, so those requests go on to the upstream at once.
 *
 * It belongs to the Faultline instance, not to a config generation: a
 * reload never turns chaos back on behind an operator's back.
 */
import { setMaxListeners } from 'node:events'

/**
 * An AbortController whose signal takes any number of listeners: every
 * in-flight injected delay listens, and Node would warn past ten.
 */
export function releaser (): AbortController {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}

export class ChaosSwitch {
  private isOn = true
  private release = releaser()

  get enabled (): boolean { return this.isOn }

  /** Aborted while the switch is off; a fresh signal after it is turned on again. */
  get releaseSignal (): AbortSignal { return this.release.signal }

  /** Returns false when it was already off. */
  turnOff (): boolean {
    if (!this.isOn) return false
    this.isOn = false
    this.release.abort()
    return true
  }

  /** Returns false when it was already on. */
  turnOn (): boolean {
    if (this.isOn) return false
    this.isOn = true
    this.release = releaser()
    return true
  }
}
