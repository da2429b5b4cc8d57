// VMX root, interrupts off. Any exit the controls should not produce: full state to the log, then
// stop this CPU (the defined, loud outcome; SDM Vol 3C Appendix C lists the reasons).
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class UnexpectedExitHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            VmxFatal.Report(ref e, "unexpected VM exit");
            return ExitAction.Resume;
        }
    }
}
