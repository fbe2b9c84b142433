/**
 * The process-wide kill switch. Off stops every injection at once: the
 * fault stages check `enabled` per attempt, and every injected delay, hang
 * and throttle in flight listens to `chaosOffSignal`, which aborts when the
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
export function chaosOffController (): AbortController {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}

/** Fleet control (src/fleet/kill-switch.ts): carries a local change to every replica. */
export interface FleetSwitchLink {
  /** Resolves true when the fleet got the change, false when Redis was unreachable (it is retried). */
  tell: (on: boolean) => Promise<boolean>
}

export class ChaosSwitch {
  private isOn = true
  private chaosOff = chaosOffController()
  /** Set while fleet control runs; a local change (admin API, signal) is told to the other replicas. */
  fleet: FleetSwitchLink | undefined
  /** Whether the fleet got the latest local change; undefined without fleet control. */
  told: Promise<boolean> | undefined

  get enabled (): boolean { return this.isOn }

  /** Aborted while the switch is off; a fresh signal after it is turned on again. */
  get chaosOffSignal (): AbortSignal { return this.chaosOff.signal }

  /** Returns false when it was already off. Told to the fleet either way: pressing stop again re-broadcasts it. */
  turnOff (): boolean {
    this.told = this.fleet?.tell(false)
    return this.setLocal(false)
  }

  /** Returns false when it was already on. */
  turnOn (): boolean {
    this.told = this.fleet?.tell(true)
    return this.setLocal(true)
  }

  /** Applies a change that came from the fleet (not told back to it). Returns false when nothing changed. */
  setLocal (on: boolean): boolean {
    if (this.isOn === on) return false
    this.isOn = on
    if (on) this.chaosOff = chaosOffController()
    else this.chaosOff.abort()
    return true
  }
}
