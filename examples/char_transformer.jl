# char_transformer.jl: a character-level transformer language model on the
# works of Shakespeare (examples/data/tinyshakespeare.txt.gz, 1.1 MB of
# public-domain text as compiled in Karpathy's char-rnn), in the W3
# configuration of the performance plan: bytes as tokens (vocab 256),
# d_model 128, 4 heads, 2 pre-LN layers, MLP 512 with tanh-GELU, sequences
# of 128, causal attention, AdamW 3e-4, batch 32. After training it samples
# 400 characters, one at a time, after a 128-byte window of the training
# text, prints them and writes them to sample.txt in the run directory.
# Run: jlc run examples/char_transformer.jl
# Expected (measured on a shared 2-vCPU VM, about 1 s per step): val_loss
# 2.47 nats per byte after epoch 0 (uniform over 256 bytes is 5.5) and 1.95
# after the 3 epochs (792 steps, about 19 minutes); the sample has
# Shakespeare's layout (speaker names in capitals, short lines) and many
# real words ("And thee", "I you that"); more epochs make it read better.
use nn.{Embedding, LayerNorm, Linear, TransformerBlock}
use losses.cross_entropy
use metrics.accuracy
use optim.adamw

model CharTransformer(vocab: int = 256, d: int = 128, heads: int = 4, hidden: int = 512, seq: int = 128, layers: int = 2, temperature: float = 0.8, sample_len: int = 400) {
    tok_emb: Embedding(vocab, d, std = 0.02)
    pos_emb: f32[seq, d] = normal(0.02)
    blocks: [TransformerBlock(d, heads, hidden); layers]
    ln_f: LayerNorm(d)
    head: Linear(d, vocab)

    # Logits of the next byte at every position: [B * seq, vocab].
    fn forward(self, tokens: i32[B, seq]) -> f32[B * seq, vocab] {
        let x = self.tok_emb(tokens) + self.pos_emb
        for i in 0..layers {
            x = self.blocks[i](x)
        }
        self.head(reshape(self.ln_f(x), (-1, d)))
    }

    fn training_step(self, tokens: i32[B, seq], targets: i32[B, seq]) -> f32 {
        let logits = self.forward(tokens)
        let labels = reshape(targets, (-1,))
        log("train_acc", accuracy(logits, labels), prog_bar = true)
        cross_entropy(logits, labels)
    }

    fn validation_step(self, tokens: i32[B, seq], targets: i32[B, seq]) {
        let logits = self.forward(tokens)
        let labels = reshape(targets, (-1,))
        log("val_loss", cross_entropy(logits, labels), prog_bar = true)
        log("val_acc", accuracy(logits, labels))
    }

    fn configure_optimizers(self) = adamw(lr = 3e-4)

    # Sampling: the window of the last `seq` bytes predicts the next one,
    # drawn from softmax(logits / temperature) by the Gumbel-max trick
    # (argmax of logits plus Gumbel noise), then slides by one byte.
    fn on_train_end(self, tokens, targets, key) {
        let prompt = tokens[0:1]
        let next_byte = fn(state) {
            let (window, k) = state
            let (k, pick) = split(k)
            let logits = self.forward(window)[seq - 1] / temperature
            let gumbel = -log(-log(uniform(pick, vocab) * 0.999998 + 0.000001))
            let next = argmax(logits + gumbel)
            ((concat((window[:, 1:seq], reshape(next, (1, 1))), axis = 1), k), next)
        }
        let (_, sampled) = scan(next_byte, (prompt, key), length = sample_len)
        save_text("sample.txt", concat((reshape(prompt, (-1,)), sampled)))
    }
}

data = text("data/tinyshakespeare.txt.gz", seq = 128) {
    batch_size = 32
    val_split = 256
}

trainer {
    max_epochs = 3
    seed = 0
    log_every_n_steps = 20
}
