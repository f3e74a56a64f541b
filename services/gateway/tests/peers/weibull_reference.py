"""Reference figures for the gateway reliability tests (SciPy 1.14; run by hand, the tests
keep the numbers): censored Weibull MLE, mean life, B10, the age-replacement interval."""
import numpy as np
from scipy import optimize, integrate, special

failures = np.array([412.0, 587.0, 690.0, 745.0, 820.0, 903.0, 1010.0, 1102.0])
suspended = np.array([300.0, 650.0, 950.0, 1200.0])

def nll(p):
    beta, eta = np.exp(p)
    z_f = failures / eta
    z_all = np.concatenate([failures, suspended]) / eta
    ll = np.sum(np.log(beta / eta) + (beta - 1) * np.log(z_f)) - np.sum(z_all ** beta)
    return -ll

res = optimize.minimize(nll, x0=[0.0, np.log(800.0)], method="Nelder-Mead",
                        options={"xatol": 1e-12, "fatol": 1e-12, "maxiter": 20000})
beta, eta = np.exp(res.x)
print(f"beta {beta:.10f} eta {eta:.10f} loglik {-res.fun:.10f}")
print(f"mttf {eta * special.gamma(1 + 1 / beta):.10f}")
print(f"b10 {eta * (-np.log(0.9)) ** (1 / beta):.10f}")

cp, cf = 1.0, 10.0
R = lambda t: np.exp(-(t / eta) ** beta)
def rate(T):
    up = integrate.quad(R, 0, T, epsabs=1e-12, epsrel=1e-12)[0]
    return (cp * R(T) + cf * (1 - R(T))) / up
opt = optimize.minimize_scalar(rate, bounds=(1.0, 3 * eta), method="bounded",
                               options={"xatol": 1e-9})
print(f"interval {opt.x:.10f} rate {opt.fun:.12f} run_to_failure {cf / (eta * special.gamma(1 + 1 / beta)):.12f}")

# Uncensored check with scipy's own fit.
from scipy import stats
c, loc, scale = stats.weibull_min.fit(failures, floc=0)
print(f"uncensored beta {c:.10f} eta {scale:.10f}")
