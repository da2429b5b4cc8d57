using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>Emulator boots run one after another: clean timings, and one Bochs at a time.</summary>
[CollectionDefinition("Emulators")]
public sealed class EmulatorCollection;
