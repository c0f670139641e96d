"""Deterministic synthetic alpaca data for the preprocessing benchmark.

Writes a folder laid out like LLaMA-Factory's repo root:

    OUT/data/dataset_info.json     {"bench_alpaca": {"file_name": "bench_alpaca.json"}}
    OUT/data/bench_alpaca.json     [{"instruction", "input", "output"}, ...]

About 40% of the examples are Chinese. Lengths are drawn in words from a small built-in vocabulary;
with the benchmark's tokenizer (trained on this very data) a word is roughly one token. Measured
with it for the default 20,000 examples: prompts 15-364 tokens (1st-99th percentile 28-325,
median 123), responses 10-618 (29-462, median 173).
About 8% of the outputs carry T5-style ``<extra_id_N>`` sentinel markers between sentences.

    python make_data.py OUT [--n 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

EN_WORDS = """
the a an of to in for on with by from at as about into over after before under between through during
model data token layer weight gradient loss batch sequence attention memory kernel tensor matrix vector
train learn predict sample dataset corpus prompt reply answer question example method result value
small large fast slow simple complex early late first last new old good bad high low long short
river mountain city garden window kitchen library market station village forest ocean island bridge
teacher student doctor farmer artist writer engineer driver painter singer player builder sailor
read write speak listen build carry follow explain describe compare improve measure observe remember
apple bread cheese coffee honey lemon orange pepper rice salt sugar tomato water butter flour
morning evening winter summer spring autumn weather season holiday history science music travel
because although however therefore while unless until since whether either neither both each every
quickly slowly carefully quietly clearly rarely often always never sometimes usually nearly almost
system network server client request response message signal channel buffer queue thread process
story chapter letter poem article report summary review note paragraph sentence word phrase title
green blue red yellow purple silver golden bright dark warm cold soft hard heavy light quiet loud
""".split()

ZH_WORDS = """
我们 你们 他们 今天 明天 昨天 时间 问题 方法 结果 数据 模型 训练 学习 预测 样本 语言 文字 句子 段落
城市 河流 山脉 花园 窗户 厨房 图书馆 市场 车站 村庄 森林 海洋 岛屿 桥梁 老师 学生 医生 农民 艺术家
作家 工程师 司机 画家 歌手 阅读 写作 说话 倾听 建设 携带 跟随 解释 描述 比较 改进 测量 观察 记住
苹果 面包 奶酪 咖啡 蜂蜜 柠檬 橙子 胡椒 米饭 盐 糖 番茄 水 黄油 面粉 早上 晚上 冬天 夏天 春天 秋天
天气 季节 假期 历史 科学 音乐 旅行 因为 虽然 但是 所以 如果 除非 直到 自从 是否 每个 快速 慢慢
仔细 安静 清楚 很少 经常 总是 从不 有时 通常 几乎 系统 网络 服务器 客户端 请求 响应 消息 信号 通道
故事 章节 信件 诗歌 文章 报告 总结 评论 笔记 标题 绿色 蓝色 红色 黄色 紫色 银色 金色 明亮 黑暗
温暖 寒冷 柔软 坚硬 沉重 轻松 重要 简单 复杂 新的 旧的 好的 坏的 高 低 长 短 大 小 的 了 在 是 和
""".split()

EN_ASKS = ["Explain", "Describe", "Summarize", "Rewrite", "Translate", "Compare", "List", "Write"]
ZH_ASKS = ["请解释", "请描述", "请总结", "请改写", "请翻译", "请比较", "请列出", "请写"]


def sentence(rng: random.Random, zh: bool, n_words: int) -> str:
    if zh:
        words = [rng.choice(ZH_WORDS) for _ in range(n_words)]
        for i in range(4, len(words) - 2, rng.randint(4, 8)):
            words[i] += "，"
        return "".join(words) + rng.choice("。。。！？")
    words = [rng.choice(EN_WORDS) for _ in range(n_words)]
    for i in range(5, len(words) - 2, rng.randint(5, 10)):
        words[i] += ","
    return " ".join(words).capitalize() + rng.choice("...!?")


def text(rng: random.Random, zh: bool, n_words: int, markers: bool = False) -> str:
    """About ``n_words`` words in sentences of 4-24 words; optional <extra_id_N> between sentences."""
    parts: list[str] = []
    left = n_words
    while left > 0:
        k = min(left, rng.randint(4, 24))
        parts.append(sentence(rng, zh, k))
        left -= k
        if markers and left > 0 and rng.random() < 0.3:
            parts.append(f"<extra_id_{rng.randint(0, 99)}>")
    joiner = "" if zh else " "
    if len(parts) > 3 and rng.random() < 0.5:  # some paragraphs
        cut = rng.randint(1, len(parts) - 1)
        return joiner.join(parts[:cut]) + "\n\n" + joiner.join(parts[cut:])
    return joiner.join(parts)


def skewed(rng: random.Random, low: int, high: int, mode: int) -> int:
    return int(round(rng.triangular(low, high, mode)))


def example(rng: random.Random) -> dict:
    zh = rng.random() < 0.4
    prompt_words = skewed(rng, 16, 310, 55)
    has_input = rng.random() < 0.35
    input_words = min(prompt_words - 8, rng.randint(8, max(8, prompt_words // 2))) if has_input else 0
    ask = rng.choice(ZH_ASKS if zh else EN_ASKS)
    instruction = ask + ("：" if zh else ": ") + text(rng, zh, prompt_words - input_words - 1)
    output = text(rng, zh, skewed(rng, 10, 440, 80), markers=rng.random() < 0.08)
    return {"instruction": instruction, "input": text(rng, zh, input_words) if has_input else "", "output": output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = [example(rng) for _ in range(args.n)]
    data_dir = Path(args.out) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "bench_alpaca.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    info = {"bench_alpaca": {"file_name": "bench_alpaca.json"}}
    (data_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    n_zh = sum(1 for r in rows if any("\u4e00" <= c <= "\u9fff" for c in r["output"]))
    n_marker = sum(1 for r in rows if "<extra_id_" in r["output"])
    size = (data_dir / "bench_alpaca.json").stat().st_size
    print(f"[data] {args.n} examples (seed {args.seed}) -> {data_dir}: {n_zh} Chinese ({100 * n_zh / args.n:.0f}%), "
          f"{n_marker} outputs with <extra_id_N>, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
